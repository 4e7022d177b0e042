// OAuth through the public API against a real OpenID Provider (oidc-provider on 127.0.0.1) and a local stand-in for
// GitHub: sign-in, sign-up, linking and unlinking, state rules, ID token checks, provider failures, audit rows.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Env, loadConfig } from '../src/config.ts';
import { AuditEvent, type AuditEventType, LinkedAccount, User } from '../src/db/entities.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { TestClock } from './support/clock.ts';
import { expectError } from './support/expect.ts';
import type { FakeGitHub, GitHubAccount } from './support/github.ts';
import {
  errorCode,
  extensionsOf,
  type Gql,
  loginUser,
  type Payload,
  registerUser,
  uniqueEmail,
} from './support/graphql.ts';
import {
  ACME,
  authorize as authorizeAt,
  type Callback,
  githubAccount,
  LOGIN,
  loginWithCallback,
  oidcAccount,
  REDIRECT,
  START,
  startProviders,
  startSignIn,
  type TestProviders,
} from './support/oauth.ts';
import { type OidcAccount, startOidcProvider, type TestOidcProvider } from './support/oidc.ts';
import { freePort, serviceAvailable, startRedis } from './support/services.ts';

const MINUTE = 60_000;
const INVALID_STATE = 'The sign-in attempt is invalid or has expired; start again';

const LINKED = 'linkedAccounts { provider providerUserId email linkedAt }';
const LINK = `mutation($input: OAuthCodeInput!) { linkOAuthProvider(input: $input) { id ${LINKED} } }`;
const UNLINK = `mutation($provider: String!) { unlinkOAuthProvider(provider: $provider) { id ${LINKED} } }`;

interface LinkedView {
  provider: string;
  providerUserId: string;
  email: string | null;
  linkedAt: string;
}

describe.each(dialects())('OAuth on %s', (dialect) => {
  const clock = new TestClock();
  let t: TestApp;
  let oidc: TestOidcProvider;
  let github: FakeGitHub;
  let providers: TestProviders;

  beforeAll(async () => {
    providers = await startProviders();
    ({ oidc, github } = providers);
    t = await startTestApp({
      dialect,
      clock,
      env: {
        OAUTH_REDIRECT_URIS: `${REDIRECT}, https://app.test/other-callback`,
        OAUTH_TIMEOUT: '1s',
        ...providers.env,
      },
    });
  });

  afterAll(async () => {
    await t?.close();
    await providers?.stop();
  });

  const gql: Gql = (query, variables, options) => t.gql(query, variables, options);

  const start = (provider: string, token?: string) => startSignIn(gql, provider, token);

  /** startOAuth, then the user at the provider: what comes back on the redirect URI. */
  const authorize = (provider: string, account: OidcAccount | GitHubAccount, token?: string) =>
    authorizeAt({ gql, oidc, github }, provider, account, token);

  const login = (input: Callback) => loginWithCallback(gql, input);
  const link = (input: Callback, token: string) =>
    gql<{ linkOAuthProvider: { id: string; linkedAccounts: LinkedView[] } }>(LINK, { input }, { token });
  const unlink = (provider: string, token: string) =>
    gql<{ unlinkOAuthProvider: { id: string; linkedAccounts: LinkedView[] } }>(UNLINK, { provider }, { token });

  async function signIn(provider: string, account: OidcAccount | GitHubAccount): Promise<Payload> {
    const response = await login(await authorize(provider, account));
    if (!response.data?.loginWithOAuth) throw new Error(`loginWithOAuth failed: ${JSON.stringify(response.errors)}`);
    return response.data.loginWithOAuth;
  }

  async function linkedAccounts(token: string): Promise<LinkedView[]> {
    const response = await gql<{ me: { linkedAccounts: LinkedView[] } }>(`{ me { ${LINKED} } }`, {}, { token });
    if (!response.data?.me) throw new Error(`me failed: ${JSON.stringify(response.errors)}`);
    return response.data.me.linkedAccounts;
  }

  const em = () => t.app.orm.em.fork();
  const auditRows = async (type: AuditEventType, userId?: string | null) =>
    (
      await em().find(AuditEvent, { type, ...(userId === undefined ? {} : { userId }) }, { orderBy: { id: 'asc' } })
    ).map((row) => ({
      userId: row.userId,
      sessionId: row.sessionId,
      detail: row.detail ? JSON.parse(row.detail) : null,
    }));
  const userCount = (email: string) => em().count(User, { email });

  describe('providers and startOAuth', () => {
    it('lists the configured providers with their display names', async () => {
      const response = await gql('{ oauthProviders { id name } }');
      expect(response.errors).toBeUndefined();
      expect(response.data?.oauthProviders).toEqual([
        { id: 'github', name: 'GitHub' },
        { id: 'google', name: 'Google' },
        { id: 'acme', name: 'Acme ID' },
      ]);
    });

    it('returns the provider authorization URL with PKCE (S256), state, nonce and the redirect URI', async () => {
      const { authorizationUrl, state } = await start('acme');
      const url = new URL(authorizationUrl);
      expect(`${url.origin}${url.pathname}`).toBe(`${oidc.issuer}/auth`);
      const params = Object.fromEntries(url.searchParams);
      expect(params).toMatchObject({
        client_id: ACME.clientId,
        response_type: 'code',
        redirect_uri: REDIRECT,
        scope: 'openid email profile',
        state,
        code_challenge_method: 'S256',
      });
      expect(params.code_challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(params.nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(state).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(authorizationUrl).not.toContain(ACME.clientSecret);
    });

    it('sends GitHub users to the configured authorize URL with PKCE and no nonce', async () => {
      const url = new URL((await start('github')).authorizationUrl);
      expect(`${url.origin}${url.pathname}`).toBe(`${github.url}/login/oauth/authorize`);
      expect(url.searchParams.get('code_challenge_method')).toBe('S256');
      expect(url.searchParams.get('scope')).toBe('read:user user:email');
      expect(url.searchParams.has('nonce')).toBe(false);
    });

    it('refuses a redirect URI that is not on the allow-list, even a near match', async () => {
      for (const redirectUri of [
        'https://evil.test/oauth/callback',
        `${REDIRECT}/`,
        `${REDIRECT}?next=/admin`,
        'https://app.test/oauth/callback/../other-callback',
        'HTTPS://APP.TEST/oauth/callback',
      ]) {
        expectError(await gql(START, { provider: 'acme', redirectUri }), {
          code: 'BAD_USER_INPUT',
          field: 'redirectUri',
        });
      }
      expect((await gql(START, { provider: 'acme', redirectUri: 'https://app.test/other-callback' })).errors).toBe(
        undefined,
      );
    });

    it('refuses an unknown provider', async () => {
      expectError(await gql(START, { provider: 'myspace', redirectUri: REDIRECT }), {
        code: 'BAD_USER_INPUT',
        field: 'provider',
      });
      expectError(await login({ provider: 'myspace', code: 'x', state: 'y'.repeat(43) }), {
        code: 'BAD_USER_INPUT',
        field: 'provider',
      });
    });
  });

  describe('loginWithOAuth', () => {
    it('creates an account for an unknown provider account, with the email the provider verified', async () => {
      const account = oidcAccount({ email: `Mixed.Case-${randomUUID().slice(0, 6)}@Example.com` });
      const payload = await signIn('acme', account);
      expect(payload.tokenType).toBe('Bearer');
      expect(payload.user).toMatchObject({
        email: account.email?.toLowerCase(),
        emailVerified: true,
        displayName: 'Ada Lovelace',
        roles: ['USER'],
      });
      expect(payload.session.current).toBe(true);
      const me = await gql('{ me { id } }', {}, { token: payload.accessToken });
      expect(me.data?.me).toEqual({ id: payload.user.id });
      expect(await linkedAccounts(payload.accessToken)).toEqual([
        {
          provider: 'acme',
          providerUserId: account.sub,
          email: account.email?.toLowerCase(),
          linkedAt: expect.any(String),
        },
      ]);
      // No password: the account signs in through the provider only.
      const row = await em().findOneOrFail(User, { id: payload.user.id });
      expect(row.passwordHash).toBeNull();
      expect(await auditRows('OAUTH_SIGNUP', payload.user.id)).toEqual([
        { userId: payload.user.id, sessionId: payload.session.id, detail: { provider: 'acme' } },
      ]);
    });

    it('refuses to create an account when the provider has not verified the email', async () => {
      const account = oidcAccount({ email_verified: false });
      expectError(
        await login(await authorize('acme', account)),
        { code: 'OAUTH_FAILED' },
        'Acme ID did not share a verified email address, which a new account needs; verify one there and try again',
      );
      expect(await userCount(account.email as string)).toBe(0);
      expect(await auditRows('OAUTH_FAILED', null)).toContainEqual({
        userId: null,
        sessionId: null,
        detail: { provider: 'acme', reason: 'NO_VERIFIED_EMAIL', purpose: 'login' },
      });
    });

    it('signs a linked provider account in to the same user with a new session', async () => {
      const account = oidcAccount();
      const first = await signIn('acme', account);
      const second = await signIn('acme', { ...account, email: uniqueEmail('changed') });
      expect(second.user.id).toBe(first.user.id);
      expect(second.session.id).not.toBe(first.session.id);
      // The email of the account is ours; a changed one at the provider does not move it.
      expect(second.user.email).toBe(first.user.email);
      expect(await auditRows('OAUTH_LOGIN', first.user.id)).toEqual([
        { userId: first.user.id, sessionId: second.session.id, detail: { provider: 'acme' } },
      ]);
      const sessions = await gql<{ me: { sessions: { id: string }[] } }>(
        '{ me { sessions { id } } }',
        {},
        { token: second.accessToken },
      );
      expect(sessions.data?.me.sessions.map((s) => s.id).sort()).toEqual([first.session.id, second.session.id].sort());
    });

    it('signs in with Google as an OpenID Connect provider of its own', async () => {
      const account = oidcAccount();
      const payload = await signIn('google', account);
      expect(await linkedAccounts(payload.accessToken)).toMatchObject([
        { provider: 'google', providerUserId: account.sub },
      ]);
    });

    it('answers ACCOUNT_EXISTS when a verified email belongs to an account, and creates nothing', async () => {
      const owner = await registerUser(gql);
      const account = oidcAccount({ email: owner.user.email.toUpperCase() });
      expectError(
        await login(await authorize('acme', account)),
        { code: 'ACCOUNT_EXISTS' },
        'An account with this email already exists: sign in to it, then link Acme ID from there',
      );
      expect(await em().count(LinkedAccount, { providerUserId: account.sub })).toBe(0);
      // An unverified one is not looked up at all: the answer says nothing about the account.
      const unverified = oidcAccount({ email: owner.user.email, email_verified: false });
      expect(errorCode(await login(await authorize('acme', unverified)))).toBe('OAUTH_FAILED');
      expect(await em().count(LinkedAccount, { providerUserId: unverified.sub })).toBe(0);
      expect(await userCount(owner.user.email)).toBe(1);
      expect(await auditRows('OAUTH_FAILED', owner.user.id)).toEqual([
        {
          userId: owner.user.id,
          sessionId: null,
          detail: { provider: 'acme', reason: 'ACCOUNT_EXISTS', purpose: 'login' },
        },
      ]);
    });

    it('refuses a state that was already used', async () => {
      const callback = await authorize('acme', oidcAccount());
      expect((await login(callback)).errors).toBeUndefined();
      expectError(await login(callback), { code: 'OAUTH_FAILED' }, INVALID_STATE);
    });

    it('refuses a state started for another provider, and spends it', async () => {
      const callback = await authorize('acme', oidcAccount());
      expectError(await login({ ...callback, provider: 'github' }), { code: 'OAUTH_FAILED' }, INVALID_STATE);
      expectError(await login({ ...callback, provider: 'google' }), { code: 'OAUTH_FAILED' }, INVALID_STATE);
      expectError(await login(callback), { code: 'OAUTH_FAILED' }, INVALID_STATE);
    });

    it('refuses a made-up state', async () => {
      expectError(
        await login({ provider: 'acme', code: 'abc', state: 'A'.repeat(43) }),
        { code: 'OAUTH_FAILED' },
        INVALID_STATE,
      );
      expectError(
        await login({ provider: 'acme', code: 'abc', state: '../../etc' }),
        { code: 'OAUTH_FAILED' },
        INVALID_STATE,
      );
    });

    it('refuses a state after its 10 minutes', async () => {
      const callback = await authorize('acme', oidcAccount());
      clock.advance(10 * MINUTE + 1000);
      expectError(await login(callback), { code: 'OAUTH_FAILED' }, INVALID_STATE);
    });

    it('refuses an ID token whose nonce is not the one the attempt was started with', async () => {
      const account = oidcAccount();
      const callback = await authorize('acme', account);
      const key = `oauth:state:${callback.state}`;
      const stored = JSON.parse((await t.app.store.get(key)) as string);
      await t.app.store.set(key, JSON.stringify({ ...stored, nonce: 'a-different-nonce' }), 10 * MINUTE);
      expectError(
        await login(callback),
        { code: 'OAUTH_FAILED' },
        'The answer from Acme ID could not be verified; start again',
      );
      expect(await userCount(account.email as string)).toBe(0);
    });

    it('refuses a code the provider does not accept (made up, or after the user declined)', async () => {
      const { authorizationUrl, state } = await start('acme');
      const back = await oidc.authorize(authorizationUrl, oidcAccount(), { deny: true });
      // Declining sends the user back with an error and no code: the client stops there (see README) ...
      expect(back.searchParams.get('error')).toBe('access_denied');
      expect(back.searchParams.has('code')).toBe(false);
      // ... and a code it makes up instead is refused by the provider.
      const response = await login({ provider: 'acme', code: 'made-up-code', state });
      expectError(
        response,
        { code: 'OAUTH_FAILED' },
        'Acme ID did not accept the sign-in (it may have expired or been used already); start again',
      );
      expect(await auditRows('OAUTH_FAILED', null)).toContainEqual({
        userId: null,
        sessionId: null,
        detail: { provider: 'acme', reason: 'PROVIDER_ERROR', purpose: 'login' },
      });
    });

    it('refuses a state started to link an account', async () => {
      const user = await registerUser(gql);
      const callback = await authorize('acme', oidcAccount(), user.accessToken);
      expectError(await login(callback), { code: 'OAUTH_FAILED' }, INVALID_STATE);
    });
  });

  describe('linkOAuthProvider', () => {
    it('links a provider account to a password user, who can then sign in with it', async () => {
      const user = await registerUser(gql);
      // Same email: the sign-in that would have been ACCOUNT_EXISTS is what linking is for.
      const account = oidcAccount({ email: user.user.email });
      expect(errorCode(await login(await authorize('acme', account)))).toBe('ACCOUNT_EXISTS');
      const linked = await link(await authorize('acme', account, user.accessToken), user.accessToken);
      expect(linked.errors).toBeUndefined();
      expect(linked.data?.linkOAuthProvider).toEqual({
        id: user.user.id,
        linkedAccounts: [
          { provider: 'acme', providerUserId: account.sub, email: user.user.email, linkedAt: expect.any(String) },
        ],
      });
      const payload = await signIn('acme', account);
      expect(payload.user.id).toBe(user.user.id);
      expect((await loginUser(gql, user.user.email, user.password)).errors).toBeUndefined();
      expect(await auditRows('OAUTH_LINKED', user.user.id)).toEqual([
        { userId: user.user.id, sessionId: null, detail: { provider: 'acme' } },
      ]);
    });

    it('answers OAUTH_ACCOUNT_IN_USE for a provider account linked to someone else', async () => {
      const account = oidcAccount();
      const holder = await signIn('acme', account);
      const other = await registerUser(gql);
      expectError(
        await link(await authorize('acme', account, other.accessToken), other.accessToken),
        { code: 'OAUTH_ACCOUNT_IN_USE' },
        'This Acme ID account is already linked to another account',
      );
      expect(await linkedAccounts(other.accessToken)).toEqual([]);
      expect(await linkedAccounts(holder.accessToken)).toMatchObject([
        { provider: 'acme', providerUserId: account.sub },
      ]);
      expect(await auditRows('OAUTH_FAILED', other.user.id)).toEqual([
        {
          userId: other.user.id,
          sessionId: null,
          detail: { provider: 'acme', reason: 'ACCOUNT_IN_USE', purpose: 'link' },
        },
      ]);
    });

    it('keeps one account per provider per user', async () => {
      const user = await registerUser(gql);
      expect((await link(await authorize('acme', oidcAccount(), user.accessToken), user.accessToken)).errors).toBe(
        undefined,
      );
      expectError(await link(await authorize('acme', oidcAccount(), user.accessToken), user.accessToken), {
        code: 'BAD_USER_INPUT',
        field: 'provider',
      });
      expect(await linkedAccounts(user.accessToken)).toHaveLength(1);
    });

    it('requires a signed-in caller', async () => {
      const callback = await authorize('acme', oidcAccount());
      expect(extensionsOf(await gql(LINK, { input: callback }))).toEqual({
        code: 'UNAUTHENTICATED',
        reason: 'AUTHENTICATION_REQUIRED',
      });
    });

    it('refuses a state started anonymously or by another user', async () => {
      const user = await registerUser(gql);
      const other = await registerUser(gql);
      expectError(
        await link(await authorize('acme', oidcAccount()), user.accessToken),
        { code: 'OAUTH_FAILED' },
        INVALID_STATE,
      );
      expectError(
        await link(await authorize('acme', oidcAccount(), other.accessToken), user.accessToken),
        { code: 'OAUTH_FAILED' },
        INVALID_STATE,
      );
      expect(await linkedAccounts(user.accessToken)).toEqual([]);
    });
  });

  describe('unlinkOAuthProvider and linkedAccounts', () => {
    it('never removes the last way to sign in of an account without a password', async () => {
      const acme = oidcAccount();
      const user = await signIn('acme', acme);
      expectError(await unlink('acme', user.accessToken), { code: 'BAD_USER_INPUT', field: 'provider' });
      expect(
        (await link(await authorize('github', githubAccount(), user.accessToken), user.accessToken)).errors,
      ).toBeUndefined();
      const unlinked = await unlink('acme', user.accessToken);
      expect(unlinked.errors).toBeUndefined();
      expect(unlinked.data?.unlinkOAuthProvider.linkedAccounts.map((a) => a.provider)).toEqual(['github']);
      expectError(await unlink('github', user.accessToken), { code: 'BAD_USER_INPUT', field: 'provider' });
      expect(await auditRows('OAUTH_UNLINKED', user.user.id)).toEqual([
        { userId: user.user.id, sessionId: null, detail: { provider: 'acme' } },
      ]);
      // Unlinked: the provider account is unknown again, and its email now belongs to an account.
      expect(errorCode(await login(await authorize('acme', acme)))).toBe('ACCOUNT_EXISTS');
    });

    it('unlinks the only provider of an account that has a password', async () => {
      const user = await registerUser(gql);
      await link(await authorize('acme', oidcAccount(), user.accessToken), user.accessToken);
      const unlinked = await unlink('acme', user.accessToken);
      expect(unlinked.data?.unlinkOAuthProvider).toEqual({ id: user.user.id, linkedAccounts: [] });
    });

    it('answers NOT_FOUND for a provider that is not linked, and UNAUTHENTICATED without a token', async () => {
      const user = await registerUser(gql);
      expectError(await unlink('acme', user.accessToken), { code: 'NOT_FOUND' });
      expectError(await unlink('nonsense', user.accessToken), { code: 'NOT_FOUND' });
      expect(extensionsOf(await gql(UNLINK, { provider: 'acme' }))).toEqual({
        code: 'UNAUTHENTICATED',
        reason: 'AUTHENTICATION_REQUIRED',
      });
    });

    it('shows linked accounts to their holder and to users:read only', async () => {
      const holder = await signIn('acme', oidcAccount());
      const other = await registerUser(gql);
      const response = await gql(
        `query($id: ID!) { user(id: $id) { id ${LINKED} } }`,
        { id: holder.user.id },
        {
          token: other.accessToken,
        },
      );
      expect(errorCode(response)).toBe('FORBIDDEN');
    });
  });

  describe('GitHub', () => {
    it('signs up with the primary verified email, not another verified one', async () => {
      const account = githubAccount();
      const primary = account.emails.find((e) => e.primary)?.email;
      const payload = await signIn('github', account);
      expect(payload.user).toMatchObject({ email: primary, emailVerified: true, displayName: 'The Octocat' });
      expect(await linkedAccounts(payload.accessToken)).toEqual([
        { provider: 'github', providerUserId: String(account.id), email: primary, linkedAt: expect.any(String) },
      ]);
      const again = await signIn('github', account);
      expect(again.user.id).toBe(payload.user.id);
    });

    it('refuses to create an account when the primary email is not verified, but signs a linked one in', async () => {
      const unverified = githubAccount({
        emails: [
          { email: uniqueEmail('primary'), primary: true, verified: false },
          { email: uniqueEmail('other'), primary: false, verified: true },
        ],
      });
      const response = await login(await authorize('github', unverified));
      expectError(
        response,
        { code: 'OAUTH_FAILED' },
        'GitHub did not share a verified email address, which a new account needs; verify one there and try again',
      );
      for (const email of unverified.emails) expect(await userCount(email.email)).toBe(0);

      const user = await registerUser(gql);
      expect((await link(await authorize('github', unverified, user.accessToken), user.accessToken)).errors).toBe(
        undefined,
      );
      expect((await signIn('github', unverified)).user.id).toBe(user.user.id);
    });

    it('answers OAUTH_FAILED without secrets when GitHub fails or does not answer in time', async () => {
      for (const [fault, message] of [
        ['error', 'GitHub refused the sign-in request'],
        ['hang', 'GitHub did not answer in time; try again later'],
      ] as const) {
        const callback = await authorize('github', githubAccount());
        github.fault = fault;
        const started = Date.now();
        const response = await login(callback).finally(() => {
          github.fault = 'none';
        });
        expectError(response, { code: 'OAUTH_FAILED' }, message);
        expect(Date.now() - started).toBeLessThan(5000);
        const text = JSON.stringify(response);
        for (const secret of [github.clientSecret, callback.code, callback.state]) expect(text).not.toContain(secret);
      }
    });

    it('maps a code GitHub rejects (answered with 200 and an error) to OAUTH_FAILED', async () => {
      const callback = await authorize('github', githubAccount());
      expectError(
        await login({ ...callback, code: 'not-the-code' }),
        { code: 'OAUTH_FAILED' },
        'GitHub did not accept the sign-in (it may have expired or been used already); start again',
      );
    });
  });
});

describe('OpenID Connect discovery', () => {
  it('discovers the provider on first use only, and verifies ID tokens with its JWKS', async () => {
    const oidc = await startOidcProvider({ redirectUris: [REDIRECT], clients: [ACME] });
    const t = await startTestApp({
      env: {
        OAUTH_REDIRECT_URIS: REDIRECT,
        OAUTH_OIDC_ACME_ISSUER: oidc.issuer,
        OAUTH_OIDC_ACME_CLIENT_ID: ACME.clientId,
        OAUTH_OIDC_ACME_CLIENT_SECRET: ACME.clientSecret,
      },
    });
    try {
      expect(oidc.requests).toEqual([]);
      for (let i = 0; i < 2; i++) {
        const started = await t.gql(START, { provider: 'acme', redirectUri: REDIRECT });
        const { authorizationUrl, state } = started.data?.startOAuth ?? {};
        const back = await oidc.authorize(authorizationUrl, oidcAccount());
        const response = await t.gql(LOGIN, {
          input: { provider: 'acme', code: back.searchParams.get('code'), state },
        });
        expect(response.errors).toBeUndefined();
      }
      const count = (path: string) => oidc.requests.filter((p) => p === path).length;
      expect(count('/.well-known/openid-configuration')).toBe(1);
      expect(count('/jwks')).toBe(1);
      expect(count('/token')).toBe(2);
    } finally {
      await t.close();
      await oidc.stop();
    }
  });
});

describe('OAuth providers that are down', () => {
  let t: TestApp;
  let secret: string;

  beforeAll(async () => {
    secret = `down-secret-${randomUUID()}`;
    const port = await freePort();
    t = await startTestApp({
      env: {
        OAUTH_REDIRECT_URIS: REDIRECT,
        OAUTH_TIMEOUT: '1s',
        OAUTH_OIDC_DOWN_ISSUER: `http://127.0.0.1:${port}`,
        OAUTH_OIDC_DOWN_CLIENT_ID: 'down-client',
        OAUTH_OIDC_DOWN_CLIENT_SECRET: secret,
      },
    });
  });

  afterAll(async () => {
    await t?.close();
  });

  it('starts anyway (discovery is lazy) and answers OAUTH_FAILED naming the provider, not the secret', async () => {
    expect((await t.gql('{ oauthProviders { id name } }')).data?.oauthProviders).toEqual([
      { id: 'down', name: 'Down' },
    ]);
    const response = await t.gql(START, { provider: 'down', redirectUri: REDIRECT });
    expectError(response, { code: 'OAUTH_FAILED' }, 'Could not reach Down; try again later');
    expect(JSON.stringify(response)).not.toContain(secret);
  });
});

describe.runIf(serviceAvailable('redis-server'))('OAuth state in Redis', () => {
  it('is shared by every instance: a sign-in started on one finishes on another, once', async () => {
    const redis = await startRedis();
    const oidc = await startOidcProvider({ redirectUris: [REDIRECT], clients: [ACME] });
    const env: Env = {
      REDIS_URL: redis.url,
      OAUTH_REDIRECT_URIS: REDIRECT,
      OAUTH_OIDC_ACME_ISSUER: oidc.issuer,
      OAUTH_OIDC_ACME_CLIENT_ID: ACME.clientId,
      OAUTH_OIDC_ACME_CLIENT_SECRET: ACME.clientSecret,
    };
    const first = await startTestApp({ env });
    const second = await startTestApp({ env, databaseUrl: first.databaseUrl });
    try {
      const started = await first.gql(START, { provider: 'acme', redirectUri: REDIRECT });
      const { authorizationUrl, state } = started.data?.startOAuth ?? {};
      const back = await oidc.authorize(authorizationUrl, oidcAccount());
      const input = { provider: 'acme', code: back.searchParams.get('code'), state };
      const response = await second.gql(LOGIN, { input });
      expect(response.errors).toBeUndefined();
      expectError(await first.gql(LOGIN, { input }), { code: 'OAUTH_FAILED' }, INVALID_STATE);
    } finally {
      await second.close();
      await first.close();
      await oidc.stop();
      await redis.stop();
    }
  });
});

describe('OAuth configuration', () => {
  const load = (env: Env) => loadConfig({ NODE_ENV: 'test', ...env }, () => '');
  const acme = {
    OAUTH_REDIRECT_URIS: REDIRECT,
    OAUTH_OIDC_ACME_ISSUER: 'https://id.acme.test',
    OAUTH_OIDC_ACME_CLIENT_ID: 'id',
    OAUTH_OIDC_ACME_CLIENT_SECRET: 'secret',
  };

  it('reads GitHub, Google and any number of OpenID Connect providers from the environment', () => {
    const { oauth } = load({
      ...acme,
      OAUTH_GITHUB_CLIENT_ID: 'gh',
      OAUTH_GITHUB_CLIENT_SECRET: 'gh-secret',
      OAUTH_GOOGLE_CLIENT_ID: 'g',
      OAUTH_GOOGLE_CLIENT_SECRET: 'g-secret',
      OAUTH_OIDC_MY_CORP_ISSUER: 'https://sso.corp.test/realms/main',
      OAUTH_OIDC_MY_CORP_CLIENT_ID: 'corp',
      OAUTH_OIDC_MY_CORP_CLIENT_SECRET: 'corp-secret',
      OAUTH_OIDC_MY_CORP_DISPLAY_NAME: 'Corp SSO',
    });
    expect(oauth.redirectUris).toEqual([REDIRECT]);
    expect(oauth.timeoutMs).toBe(10_000);
    expect(oauth.providers.map((p) => [p.id, p.name, p.kind])).toEqual([
      ['github', 'GitHub', 'github'],
      ['google', 'Google', 'oidc'],
      ['acme', 'Acme', 'oidc'],
      ['my_corp', 'Corp SSO', 'oidc'],
    ]);
    expect(oauth.providers[0]).toMatchObject({
      authorizeUrl: 'https://github.com/login/oauth/authorize',
      tokenUrl: 'https://github.com/login/oauth/access_token',
      apiUrl: 'https://api.github.com',
    });
    expect(oauth.providers[1]).toMatchObject({ issuer: 'https://accounts.google.com' });
  });

  it('configures no provider by default', () => {
    expect(load({}).oauth).toEqual({ redirectUris: [], timeoutMs: 10_000, providers: [] });
  });

  it.each([
    [{ OAUTH_GITHUB_CLIENT_ID: 'gh' }, 'OAUTH_GITHUB_CLIENT_SECRET: required when OAUTH_GITHUB_CLIENT_ID is set'],
    [{ OAUTH_GOOGLE_CLIENT_SECRET: 'x' }, 'OAUTH_GOOGLE_CLIENT_ID: required when OAUTH_GOOGLE_CLIENT_SECRET is set'],
    [
      { OAUTH_OIDC_ACME_CLIENT_SECRET: '' },
      'OAUTH_OIDC_ACME_CLIENT_SECRET: required when OAUTH_OIDC_ACME_CLIENT_ID is set',
    ],
    [{ OAUTH_OIDC_ACME_ISSUER: '' }, 'OAUTH_OIDC_ACME_ISSUER: required for the OpenID Connect provider "acme"'],
    [
      { OAUTH_OIDC_ACME_ISSUER: 'http://id.acme.test' },
      'OAUTH_OIDC_ACME_ISSUER: expected an https:// URL, got "http://id.acme.test"',
    ],
    [
      { OAUTH_OIDC_ACME_SCOPE: 'x' },
      'OAUTH_OIDC_ACME_SCOPE: expected OAUTH_OIDC_<NAME>_ISSUER, _CLIENT_ID, _CLIENT_SECRET or _DISPLAY_NAME (NAME: A-Z, 0-9, _)',
    ],
    [
      { OAUTH_REDIRECT_URIS: '' },
      'OAUTH_REDIRECT_URIS: required when an OAuth provider is configured (comma-separated URLs)',
    ],
    [
      { OAUTH_REDIRECT_URIS: `${REDIRECT}?x=1` },
      `OAUTH_REDIRECT_URIS: "${REDIRECT}?x=1" is not an absolute URL without query or fragment`,
    ],
    [
      { OAUTH_REDIRECT_URIS: '/callback' },
      'OAUTH_REDIRECT_URIS: "/callback" is not an absolute URL without query or fragment',
    ],
    [{ OAUTH_TIMEOUT: 'soon' }, 'OAUTH_TIMEOUT: expected a duration like 90s, 15m, 12h or 30d, got "soon"'],
  ])('refuses %o with one line naming the variable', (env, message) => {
    expect(() => load({ ...acme, ...env })).toThrow(message);
  });

  it('accepts an http:// provider on loopback outside production only', () => {
    const local = { ...acme, OAUTH_OIDC_ACME_ISSUER: 'http://127.0.0.1:9999' };
    expect(load(local).oauth.providers[0]).toMatchObject({ issuer: 'http://127.0.0.1:9999' });
    expect(() =>
      loadConfig(
        {
          ...local,
          NODE_ENV: 'production',
          JWT_PRIVATE_KEY: 'x'.repeat(40),
          JWT_ALG: 'HS256',
          SMTP_URL: 'smtp://mail.test',
          MAIL_FROM: 'a@b.test',
        },
        () => '',
      ),
    ).toThrow('OAUTH_OIDC_ACME_ISSUER: expected an https:// URL, got "http://127.0.0.1:9999"');
  });
});
