// Passkeys in real Chromium with a CDP virtual authenticator (ctap2, internal, resident keys, user verification):
// registration, sign-in with and without an email, the second factor after a password, removal; a replayed
// assertion, one made on another origin, one for another account and a counter that does not grow are refused.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AuditEvent, Passkey, Session } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, type TestApp } from './support/app.ts';
import { errorCode, extensionsOf, PAYLOAD, type Payload, registerUser, signIn } from './support/graphql.ts';
import { type PasskeyApp, type PasskeyBrowser, startPasskeyApp } from './support/passkey-browser.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';

const PASSKEY = 'id name createdAt lastUsedAt';

// SQLite with challenges in memory; MariaDB with challenges in Redis, as in production.
const setups = dialects().map((dialect) => ({ dialect, redis: dialect === 'mysql' }));

describe.skipIf(!serviceAvailable('chromium')).each(setups)(
  'passkeys in Chromium ($dialect, redis: $redis)',
  ({ dialect, redis: withRedis }) => {
    let t: TestApp;
    let browser: PasskeyBrowser;
    let app: PasskeyApp | undefined;
    let redis: RunningService | undefined;

    beforeAll(async () => {
      redis = withRedis ? await startRedis() : undefined;
      app = await startPasskeyApp(dialect, {
        PRODUCT_NAME: 'Passkey Test',
        ...(redis ? { REDIS_URL: redis.url } : {}),
      });
      ({ t, browser } = app);
    }, 120_000);

    afterAll(async () => {
      await app?.close();
      await redis?.stop();
    });

    // One credential at a time in the authenticator: a discoverable sign-in then has exactly one to pick.
    beforeEach(() => browser.clear());

    const em = () => t.app.orm.em.fork() as Em;

    /** Registers a passkey for the holder of `token` through the browser; the Passkey. */
    async function addPasskey(token: string, name?: string) {
      const started = await t.gql<{ startPasskeyRegistration: any }>(
        'mutation { startPasskeyRegistration }',
        {},
        { token },
      );
      const options = started.data?.startPasskeyRegistration;
      if (!options) throw new Error(JSON.stringify(started.errors));
      const response = await browser.register(options);
      const finished = await t.gql<{ finishPasskeyRegistration: { id: string; name: string | null } }>(
        `mutation($r: JSON!, $n: String) { finishPasskeyRegistration(response: $r, name: $n) { ${PASSKEY} } }`,
        { r: response, n: name },
        { token },
      );
      if (!finished.data) throw new Error(JSON.stringify(finished.errors));
      return { passkey: finished.data.finishPasskeyRegistration, options, response };
    }

    const startLogin = async (email?: string) => {
      const started = await t.gql<{ startPasskeyLogin: { challengeId: string; options: any } }>(
        'mutation($e: String) { startPasskeyLogin(email: $e) { challengeId options } }',
        email === undefined ? {} : { e: email },
      );
      if (!started.data) throw new Error(JSON.stringify(started.errors));
      return started.data.startPasskeyLogin;
    };

    const loginWith = (challengeId: string, response: unknown, extra: Record<string, unknown> = {}) =>
      t.gql<{ loginWithPasskey: Payload }>(
        `mutation($i: PasskeyLoginInput!) { loginWithPasskey(input: $i) { ${PAYLOAD} } }`,
        { i: { challengeId, response, ...extra } },
      );

    const passkeysOf = async (token: string) =>
      (
        await t.gql<{ me: { passkeys: { id: string; name: string | null; lastUsedAt: string | null }[] } }>(
          `{ me { passkeys { ${PASSKEY} } } }`,
          {},
          { token },
        )
      ).data?.me.passkeys;

    it('registers a passkey (user verification and a resident key required), lists it, and revokes the other sessions with MFA_CHANGED', async () => {
      const holder = await registerUser(t.gql);
      const other = await signIn(t.gql, holder.user.email, holder.password);
      const { passkey, options } = await addPasskey(holder.accessToken, 'Laptop');
      expect(options.rp).toEqual({ id: 'localhost', name: 'Passkey Test' });
      expect(options.user.name).toBe(holder.user.email);
      expect(options.authenticatorSelection).toMatchObject({ residentKey: 'required', userVerification: 'required' });
      expect(options.excludeCredentials).toEqual([]);
      expect(passkey).toMatchObject({ name: 'Laptop', lastUsedAt: null });
      const [credential] = await browser.credentials();
      expect(credential).toMatchObject({ rpId: 'localhost', isResidentCredential: true });
      expect(await passkeysOf(holder.accessToken)).toEqual([passkey]);

      // Its other session is revoked with MFA_CHANGED; the one that added the passkey goes on.
      const refreshed = await t.gql(`mutation($t: String!) { refresh(refreshToken: $t) { accessToken } }`, {
        t: other.refreshToken,
      });
      expect(extensionsOf(refreshed)).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'SESSION_REVOKED' });
      const row = await em().findOneOrFail(Session, { id: other.session.id });
      expect(row.revokedReason).toBe('MFA_CHANGED');
      expect((await em().findOneOrFail(Session, { id: holder.session.id })).revokedReason).toBeNull();
      const added = await em().find(AuditEvent, { type: 'MFA_PASSKEY_ADDED', userId: holder.user.id });
      expect(added.map((event) => JSON.parse(event.detail ?? '{}'))).toEqual([{ passkeyId: passkey.id }]);

      // The next registration excludes it; the stored credential is the authenticator's.
      const again = await t.gql<{ startPasskeyRegistration: any }>(
        'mutation { startPasskeyRegistration }',
        {},
        {
          token: holder.accessToken,
        },
      );
      const stored = await em().findOneOrFail(Passkey, { id: passkey.id });
      expect(again.data?.startPasskeyRegistration.excludeCredentials).toEqual([
        expect.objectContaining({ id: stored.credentialId }),
      ]);
      expect(Buffer.from(credential?.credentialId ?? '', 'base64').toString('base64url')).toBe(stored.credentialId);
    });

    it('spends the registration challenge: the same response cannot add a passkey twice', async () => {
      const holder = await registerUser(t.gql);
      const { response } = await addPasskey(holder.accessToken);
      const twice = await t.gql(
        `mutation($r: JSON!) { finishPasskeyRegistration(response: $r) { id } }`,
        { r: response },
        {
          token: holder.accessToken,
        },
      );
      expect(extensionsOf(twice)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'response' });
      expect(await passkeysOf(holder.accessToken)).toHaveLength(1);
    });

    it('signs in with the email: the options list that account’s passkeys, and a whole session opens', async () => {
      const holder = await registerUser(t.gql);
      const { passkey } = await addPasskey(holder.accessToken);
      const stored = await em().findOneOrFail(Passkey, { id: passkey.id });
      const { challengeId, options } = await startLogin(holder.user.email);
      expect(options.rpId).toBe('localhost');
      expect(options.userVerification).toBe('required');
      expect(options.allowCredentials.map((c: { id: string }) => c.id)).toEqual([stored.credentialId]);
      const response = await browser.authenticate(options);
      const signedIn = await loginWith(challengeId, response);
      expect(signedIn.errors).toBeUndefined();
      expect(signedIn.data?.loginWithPasskey.user.id).toBe(holder.user.id);
      expect(signedIn.data?.loginWithPasskey.session.current).toBe(true);
      const me = await t.gql<{ me: { id: string } }>(
        '{ me { id } }',
        {},
        {
          token: signedIn.data?.loginWithPasskey.accessToken,
        },
      );
      expect(me.data?.me.id).toBe(holder.user.id);
      const [listed] = (await passkeysOf(holder.accessToken)) ?? [];
      expect(listed?.lastUsedAt).not.toBeNull();
      const success = await em().find(AuditEvent, { type: 'LOGIN_SUCCEEDED', userId: holder.user.id });
      expect(success.map((event) => JSON.parse(event.detail ?? '{}'))).toContainEqual({
        method: 'PASSKEY',
        passkeyId: passkey.id,
      });
    });

    it('signs in without an email with a discoverable passkey, for the client and token delivery asked', async () => {
      const holder = await registerUser(t.gql);
      await addPasskey(holder.accessToken);
      const { challengeId, options } = await startLogin();
      expect(options.allowCredentials).toEqual([]);
      const response = await browser.authenticate(options);
      const unknownClient = await loginWith(challengeId, response, { clientId: 'no-such-client' });
      expect(extensionsOf(unknownClient)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'clientId' });
      // The refusal of the client spent nothing: the challenge still answers.
      const signedIn = await loginWith(challengeId, response, { clientId: 'default', tokenDelivery: 'COOKIE' });
      expect(signedIn.errors).toBeUndefined();
      expect(signedIn.data?.loginWithPasskey.user.id).toBe(holder.user.id);
      // A cookie-bound session: its refresh token is only in the HttpOnly cookie.
      expect(signedIn.data?.loginWithPasskey.refreshToken).toBeNull();
      expect(signedIn.headers.get('set-cookie')).toMatch(/^refresh_token=[^;]+;.*HttpOnly/i);
    });

    it('tells ACCOUNT_DISABLED only after a valid assertion of a disabled account', async () => {
      const holder = await registerUser(t.gql);
      await addPasskey(holder.accessToken);
      const admin = await signInAsAdmin(t);
      const disabled = await t.gql(
        'mutation($id: ID!) { setUserDisabled(userId: $id, disabled: true) { disabled } }',
        { id: holder.user.id },
        { token: admin.accessToken },
      );
      expect(disabled.errors).toBeUndefined();
      const { challengeId, options } = await startLogin(holder.user.email);
      const refused = await loginWith(challengeId, await browser.authenticate(options));
      expect(errorCode(refused)).toBe('ACCOUNT_DISABLED');
      expect(refused.data).toBeNull();
    });

    it('refuses a replayed assertion: of two concurrent uses of one, exactly one signs in, and later ones none', async () => {
      const holder = await registerUser(t.gql);
      await addPasskey(holder.accessToken);
      const { challengeId, options } = await startLogin(holder.user.email);
      const response = await browser.authenticate(options);
      const both = await Promise.all([loginWith(challengeId, response), loginWith(challengeId, response)]);
      expect(both.map((r) => (r.data?.loginWithPasskey ? 'ok' : errorCode(r))).sort()).toEqual([
        'INVALID_CREDENTIALS',
        'ok',
      ]);
      expect(errorCode(await loginWith(challengeId, response))).toBe('INVALID_CREDENTIALS');
      // The same assertion against a fresh challenge: its signature is over the old one.
      const fresh = await startLogin(holder.user.email);
      expect(errorCode(await loginWith(fresh.challengeId, response))).toBe('INVALID_CREDENTIALS');
    });

    it('refuses an assertion made on an origin not in WEBAUTHN_ORIGINS, though the RP id matches', async () => {
      const holder = await registerUser(t.gql);
      await addPasskey(holder.accessToken);
      const elsewhere = await startLogin(holder.user.email);
      const forged = await browser.authenticate(elsewhere.options, browser.otherOrigin);
      expect(errorCode(await loginWith(elsewhere.challengeId, forged))).toBe('INVALID_CREDENTIALS');
      // The same passkey on the trusted origin signs in: it was the origin.
      const here = await startLogin(holder.user.email);
      const good = await browser.authenticate(here.options);
      expect((await loginWith(here.challengeId, good)).data?.loginWithPasskey.user.id).toBe(holder.user.id);
    });

    it('lists the passkeys in myData, with their credential ids and not their public keys', async () => {
      const holder = await registerUser(t.gql);
      const { passkey } = await addPasskey(holder.accessToken, 'Laptop');
      const stored = await em().findOneOrFail(Passkey, { id: passkey.id });
      const answer = await t.gql<{ myData: Record<string, any> }>('{ myData }', {}, { token: holder.accessToken });
      expect(answer.data?.myData.secondFactor).toEqual({
        totp: null,
        recoveryCodes: [],
        passkeys: [
          {
            id: passkey.id,
            name: 'Laptop',
            credentialId: stored.credentialId,
            transports: stored.transports ? stored.transports.split(',') : [],
            deviceType: stored.deviceType,
            backedUp: stored.backedUp,
            createdAt: stored.createdAt.toISOString(),
            lastUsedAt: null,
          },
        ],
      });
      expect(JSON.stringify(answer.data?.myData)).not.toContain(stored.publicKey);
    });

    it('takes an assertion whose userHandle is empty (Safari, a passkey on another device) as naming no account', async () => {
      const holder = await registerUser(t.gql);
      await addPasskey(holder.accessToken);
      const { challengeId, options } = await startLogin(holder.user.email);
      const response = await browser.authenticate(options);
      // The handle is not signed: an empty one stands for none, and the passkey's own account signs in.
      const blank = { ...response, response: { ...(response.response as object), userHandle: '' } };
      const signedIn = await loginWith(challengeId, blank);
      expect(signedIn.errors).toBeUndefined();
      expect(signedIn.data?.loginWithPasskey.user.id).toBe(holder.user.id);
    });

    it('refuses a passkey of another account than the email names', async () => {
      const holder = await registerUser(t.gql);
      const stranger = await registerUser(t.gql);
      await addPasskey(holder.accessToken);
      // The stranger has no passkey: the browser offers any discoverable one, the holder's.
      const { challengeId, options } = await startLogin(stranger.user.email);
      expect(options.allowCredentials).toEqual([]);
      const response = await browser.authenticate(options);
      expect(errorCode(await loginWith(challengeId, response))).toBe('INVALID_CREDENTIALS');
    });

    it('refuses a signature counter that does not grow, and audits it', async () => {
      const holder = await registerUser(t.gql);
      const { passkey } = await addPasskey(holder.accessToken);
      const first = await startLogin(holder.user.email);
      expect((await loginWith(first.challengeId, await browser.authenticate(first.options))).errors).toBeUndefined();
      const [credential] = await browser.credentials();
      const stored = await em().findOneOrFail(Passkey, { id: passkey.id });
      expect(stored.counter).toBe(credential?.signCount);
      expect(stored.counter).toBeGreaterThan(0);
      // As if a clone of the authenticator had been used meanwhile: the stored counter is ahead of this one.
      await em().nativeUpdate(Passkey, { id: passkey.id }, { counter: stored.counter + 1000 });
      const next = await startLogin(holder.user.email);
      expect(errorCode(await loginWith(next.challengeId, await browser.authenticate(next.options)))).toBe(
        'INVALID_CREDENTIALS',
      );
      const failures = await em().find(AuditEvent, { type: 'LOGIN_FAILED', userId: holder.user.id });
      expect(failures.map((event) => JSON.parse(event.detail ?? '{}'))).toContainEqual({
        method: 'PASSKEY',
        reason: 'COUNTER_REGRESSION',
        passkeyId: passkey.id,
      });
      expect((await em().findOneOrFail(Passkey, { id: passkey.id })).counter).toBe(stored.counter + 1000);
    });

    it('renames and removes a passkey: removed, it signs nobody in; NOT_FOUND for an unknown id or another user’s', async () => {
      const holder = await registerUser(t.gql);
      const stranger = await registerUser(t.gql);
      const { passkey } = await addPasskey(holder.accessToken);
      const renamedByStranger = await t.gql(
        `mutation($id: ID!) { renamePasskey(id: $id, name: "Mine") { id } }`,
        { id: passkey.id },
        { token: stranger.accessToken },
      );
      expect(errorCode(renamedByStranger)).toBe('NOT_FOUND');
      const renamed = await t.gql<{ renamePasskey: { id: string; name: string | null } }>(
        `mutation($id: ID!) { renamePasskey(id: $id, name: " Phone ") { id name } }`,
        { id: passkey.id },
        { token: holder.accessToken },
      );
      expect(renamed.data?.renamePasskey).toEqual({ id: passkey.id, name: 'Phone' });
      const notYours = await t.gql(
        `mutation($id: ID!) { removePasskey(id: $id) { id } }`,
        { id: passkey.id },
        {
          token: stranger.accessToken,
        },
      );
      expect(errorCode(notYours)).toBe('NOT_FOUND');
      const unknown = await t.gql(
        `mutation($id: ID!) { removePasskey(id: $id) { id } }`,
        { id: crypto.randomUUID() },
        {
          token: holder.accessToken,
        },
      );
      expect(errorCode(unknown)).toBe('NOT_FOUND');
      // Another session, by the passkey itself (a password sign-in now asks for the second factor).
      const first = await startLogin(holder.user.email);
      const newSession = (await loginWith(first.challengeId, await browser.authenticate(first.options))).data
        ?.loginWithPasskey as Payload;
      const removed = await t.gql<{ removePasskey: { id: string; passkeys: unknown[] } }>(
        `mutation($id: ID!) { removePasskey(id: $id) { id passkeys { id } } }`,
        { id: passkey.id },
        { token: holder.accessToken },
      );
      expect(removed.data?.removePasskey).toEqual({ id: holder.user.id, passkeys: [] });
      expect((await em().findOneOrFail(Session, { id: newSession.session.id })).revokedReason).toBe('MFA_CHANGED');
      expect((await em().findOneOrFail(Session, { id: holder.session.id })).revokedReason).toBeNull();
      // The authenticator still holds the credential; the server no longer knows it.
      expect(await browser.credentials()).toHaveLength(1);
      const { challengeId, options } = await startLogin();
      expect(errorCode(await loginWith(challengeId, await browser.authenticate(options)))).toBe('INVALID_CREDENTIALS');
      const removedEvents = await em().find(AuditEvent, { type: 'MFA_PASSKEY_REMOVED', userId: holder.user.id });
      expect(removedEvents).toHaveLength(1);
    });
  },
);
