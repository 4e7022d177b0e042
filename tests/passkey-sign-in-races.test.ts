// A passkey sign-in racing the removal of its passkey: the assertion is checked before the sign-in's transaction,
// and a removal that commits in between revokes every session there is, which the sign-in's is not yet. Forced on
// MariaDB by holding the user row from another connection until the removal and then the sign-in's locking read
// queue behind it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, Session } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { dialects, type TestApp } from './support/app.ts';
import { errorCode, PAYLOAD, type Payload, registerUser } from './support/graphql.ts';
import { type PasskeyApp, type PasskeyBrowser, registerPasskey, startPasskeyApp } from './support/passkey-browser.ts';
import { MFA_CHANGE_USER_LOCK, rowHolder, SIGN_IN_USER_LOCK } from './support/row-locks.ts';
import { serviceAvailable } from './support/services.ts';

// MariaDB only. The app runs in the test's own process, on node:sqlite's synchronous driver: a write lock held on the
// file from here would stall the app's event loop, not just its transaction, and SQLite runs one write transaction
// at a time, so on SQLite there is no window between the assertion's check and the session to hold open.
describe.skipIf(!serviceAvailable('chromium')).each(dialects().filter((dialect) => dialect === 'mysql'))(
  'a passkey sign-in racing its removal on %s',
  (dialect) => {
    let t: TestApp;
    let browser: PasskeyBrowser;
    let app: PasskeyApp | undefined;

    beforeAll(async () => {
      app = await startPasskeyApp(dialect);
      ({ t, browser } = app);
    }, 120_000);

    afterAll(() => app?.close());

    const em = () => t.app.orm.em.fork() as Em;

    it('opens no session once the passkey is removed: INVALID_CREDENTIALS, LOGIN_FAILED UNKNOWN_PASSKEY', async () => {
      const account = await registerUser(t.gql);
      const passkeyId = await registerPasskey(t.gql, browser, account.accessToken);
      // A real assertion by that passkey, for a challenge bound to the account.
      const challenge = await t.gql<{ startPasskeyLogin: { challengeId: string; options: unknown } }>(
        'mutation($e: String) { startPasskeyLogin(email: $e) { challengeId options } }',
        { e: account.user.email },
      );
      const { challengeId, options } = challenge.data?.startPasskeyLogin ?? {};
      if (!challengeId) throw new Error(JSON.stringify(challenge.errors));
      const response = await browser.authenticate(options);

      const holder = await rowHolder(t.databaseUrl);
      try {
        await holder.holdUser(account.user.id);
        // The removal takes the user row first (src/mfa/user-lock.ts): it queues behind the holder.
        const removal = t.gql<{ removePasskey: { passkeys: { id: string }[] } }>(
          'mutation($id: ID!) { removePasskey(id: $id) { passkeys { id } } }',
          { id: passkeyId },
          { token: account.accessToken },
        );
        await holder.waitingOn(MFA_CHANGE_USER_LOCK);
        // The sign-in's locking read of the user row, the first statement of its transaction, after the assertion
        // was checked: it queues behind the removal.
        const signIn = t.gql<{ loginWithPasskey: Payload }>(
          `mutation($i: PasskeyLoginInput!) { loginWithPasskey(input: $i) { ${PAYLOAD} } }`,
          { i: { challengeId, response } },
        );
        await holder.waitingOn(SIGN_IN_USER_LOCK);
        await holder.release();
        // The removal commits first, revoking every session but the caller's (there is no other yet).
        const removed = await removal;
        expect(errorCode(removed)).toBeUndefined();
        expect(removed.data?.removePasskey.passkeys).toEqual([]);
        const result = await signIn;
        expect(errorCode(result)).toBe('INVALID_CREDENTIALS');
        expect(result.data?.loginWithPasskey ?? null).toBeNull();
      } finally {
        await holder.end();
      }

      // The only active session is the one that removed the passkey.
      const live = await em().find(Session, { user: account.user.id, revokedAt: null });
      expect(live.map((session) => session.id)).toEqual([account.session.id]);
      const sessions = await em().find(Session, { user: account.user.id });
      expect(sessions.map((session) => session.id)).toEqual([account.session.id]);
      const events = await em().find(
        AuditEvent,
        { userId: account.user.id, type: { $in: ['LOGIN_SUCCEEDED', 'LOGIN_FAILED'] } },
        { orderBy: { id: 'asc' } },
      );
      const passkeyEvents = events
        .map((event) => ({ type: event.type, detail: JSON.parse(event.detail ?? '{}') }))
        .filter((event) => event.detail.method === 'PASSKEY');
      expect(passkeyEvents).toEqual([
        { type: 'LOGIN_FAILED', detail: { method: 'PASSKEY', reason: 'UNKNOWN_PASSKEY', passkeyId } },
      ]);
    }, 60_000);
  },
);
