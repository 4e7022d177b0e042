// The sign-in's second step (API.md "Second factor"): login and loginWithOAuth answer MFA_REQUIRED with an mfaToken
// and the methods and issue nothing; verifyMfa finishes with exactly one factor, honours the bound client and the
// chosen token delivery, spends the token once, dies after 5 tries (also when 30 arrive at once), counts wrong
// factors against the account's failed sign-ins, and the token never reaches a log line.
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { createLogger } from '../src/log.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { verifiedClaims } from './support/claims.ts';
import { TestClock } from './support/clock.ts';
import { expectError, expectRateLimited, expectUnauthenticated } from './support/expect.ts';
import { type FakeGitHub, startFakeGitHub } from './support/github.ts';
import { errorCode, extensionsOf, type Gql, loginUser, type Payload, registerUser } from './support/graphql.ts';
import { enrollTotp, MFA_STATUS, REGENERATE, TOTP_STEP_MS, totpCode, VERIFY_MFA } from './support/mfa.ts';
import { ACME, authorize, GOOGLE, loginWithCallback, oidcAccount, providersEnv, REDIRECT } from './support/oauth.ts';
import { startOidcProvider, type TestOidcProvider } from './support/oidc.ts';

interface Verified {
  accessToken: string;
  refreshToken: string | null;
  user: { id: string; email: string };
  session: { id: string; current: boolean };
}

/** A pino logger at trace level writing into memory. */
function capturedLogger() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger({ logLevel: 'trace' }, stream), text: () => chunks.join('') };
}

describe.each(dialects())('the MFA step of sign-in on %s', (dialect) => {
  const clock = new TestClock();
  const logs = capturedLogger();
  let t: TestApp;
  let oidc: TestOidcProvider;
  let github: FakeGitHub;
  const gql: Gql = (query, variables, options) => t.gql(query, variables, options);

  beforeAll(async () => {
    oidc = await startOidcProvider({ redirectUris: [REDIRECT], clients: [ACME, GOOGLE] });
    github = await startFakeGitHub();
    t = await startTestApp({
      dialect,
      clock,
      logger: logs.logger,
      env: { LOG_LEVEL: 'trace', OAUTH_REDIRECT_URIS: REDIRECT, ...providersEnv(oidc, github) },
    });
  });
  afterAll(async () => {
    await t?.close();
    await oidc?.stop();
    await github?.stop();
  });

  const verify = (input: Record<string, unknown>, headers?: Record<string, string>) =>
    gql<{ verifyMfa: Verified }>(VERIFY_MFA, { input }, { headers });
  const sessionsOf = (userId: string) => (t.app.orm.em.fork() as Em).count(Session, { user: userId });

  /** A fresh account with TOTP on (its secret, recovery codes and first payload); the clock moved past the step used. */
  async function userWithTotp() {
    const user = await registerUser(t.gql);
    const { secret, codes } = await enrollTotp(gql, user.accessToken, clock.now());
    clock.advance(TOTP_STEP_MS);
    return { ...user, secret, codes };
  }

  /** login for an account with MFA on: the MFA_REQUIRED answer's extensions. */
  async function mfaRequired(email: string, password: string, input: Record<string, unknown> = {}) {
    const answer = await gql('mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken } }', {
      input: { email, password, ...input },
    });
    expectError(answer, expect.objectContaining({ code: 'MFA_REQUIRED' }));
    return extensionsOf(answer) as { code: string; mfaToken: string; methods: string[]; passkeyOptions?: unknown };
  }

  it('answers MFA_REQUIRED after the right password, with an mfaToken and the methods, and opens no session', async () => {
    const user = await userWithTotp();
    const before = await sessionsOf(user.user.id);
    const login = await loginUser(t.gql, user.user.email, user.password);
    expect(login.data ?? null).toBeNull();
    const extensions = extensionsOf(login);
    expect(extensions).toEqual({
      code: 'MFA_REQUIRED',
      mfaToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      methods: ['TOTP', 'RECOVERY_CODE'],
    });
    expect(await sessionsOf(user.user.id)).toBe(before);
    // A wrong password still says nothing about MFA.
    expectError(await loginUser(t.gql, user.user.email, 'wrong password!'), { code: 'INVALID_CREDENTIALS' });
    // An account without MFA signs in as before.
    const plain = await registerUser(t.gql);
    expect((await loginUser(t.gql, plain.user.email, plain.password)).data?.login.accessToken).toBeTruthy();
  });

  it('finishes with a TOTP code: a session and tokens for the user; the mfaToken is spent', async () => {
    const user = await userWithTotp();
    const { mfaToken } = await mfaRequired(user.user.email, user.password);
    const answer = await verify({ mfaToken, code: totpCode(user.secret, clock.now()) });
    expect(answer.errors).toBeUndefined();
    const payload = answer.data?.verifyMfa as Verified;
    expect(payload.user).toEqual({ id: user.user.id, email: user.user.email });
    expect(payload.session.current).toBe(true);
    expect(payload.refreshToken).toEqual(expect.any(String));
    const claims = await verifiedClaims(t.url, payload.accessToken);
    expect(claims).toMatchObject({ sub: user.user.id, sid: payload.session.id, client_id: 'default' });
    const status = await gql(MFA_STATUS, {}, { token: payload.accessToken });
    expect(status.data?.me).toEqual({ id: user.user.id, mfaEnabled: true, mfaMethods: ['TOTP', 'RECOVERY_CODE'] });
    // Single use, whatever the factor.
    clock.advance(TOTP_STEP_MS);
    expectUnauthenticated(await verify({ mfaToken, code: totpCode(user.secret, clock.now()) }), 'INVALID_TOKEN');
    expectUnauthenticated(await verify({ mfaToken, recoveryCode: user.codes[0] }), 'INVALID_TOKEN');
  });

  it('honours the clientId of the login and the tokenDelivery COOKIE of verifyMfa', async () => {
    const admin = await signInAsAdmin(t);
    const clientId = `app-${randomUUID().slice(0, 8)}`;
    const created = await gql(
      'mutation($input: CreateClientInput!) { createClient(input: $input) { client { id } } }',
      { input: { id: clientId, name: 'App', type: 'PUBLIC', audiences: ['https://app.example.com'] } },
      { token: admin.accessToken },
    );
    expect(created.errors).toBeUndefined();
    const user = await userWithTotp();
    const { mfaToken } = await mfaRequired(user.user.email, user.password, { clientId });
    const response = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({
        query: VERIFY_MFA,
        variables: { input: { mfaToken, code: totpCode(user.secret, clock.now()), tokenDelivery: 'COOKIE' } },
      }),
    });
    const body = (await response.json()) as { data?: { verifyMfa: Verified }; errors?: unknown };
    expect(body.errors).toBeUndefined();
    const payload = body.data?.verifyMfa as Verified;
    expect(payload.refreshToken).toBeNull();
    const cookies = response.headers.getSetCookie();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatch(/^refresh_token=[^;]+; .*HttpOnly/);
    const claims = await verifiedClaims(t.url, payload.accessToken, { audience: 'https://app.example.com' });
    expect(claims.client_id).toBe(clientId);
    expect(claims.aud).toEqual(['https://app.example.com', 'https://api.test']);
    const em = t.app.orm.em.fork() as Em;
    expect(await em.findOneOrFail(Session, { id: payload.session.id })).toMatchObject({ clientId, cookieBound: true });
  });

  it('takes exactly one factor', async () => {
    const user = await userWithTotp();
    const { mfaToken } = await mfaRequired(user.user.email, user.password);
    expectError(await verify({ mfaToken }), { code: 'BAD_USER_INPUT', field: 'code' });
    expectError(await verify({ mfaToken, code: totpCode(user.secret, clock.now()), recoveryCode: user.codes[0] }), {
      code: 'BAD_USER_INPUT',
      field: 'recoveryCode',
    });
    // Neither answer cost a try: the right code still works.
    expect((await verify({ mfaToken, code: totpCode(user.secret, clock.now()) })).errors).toBeUndefined();
  });

  it('finishes with a recovery code, each code once', async () => {
    const user = await userWithTotp();
    const first = await mfaRequired(user.user.email, user.password);
    const used = await verify({ mfaToken: first.mfaToken, recoveryCode: user.codes[3]?.toLowerCase() });
    expect(used.errors).toBeUndefined();
    const second = await mfaRequired(user.user.email, user.password);
    expectError(await verify({ mfaToken: second.mfaToken, recoveryCode: user.codes[3] }), {
      code: 'INVALID_CODE',
      field: 'recoveryCode',
    });
    expect((await verify({ mfaToken: second.mfaToken, recoveryCode: user.codes[4] })).errors).toBeUndefined();
  });

  it('refuses codes of a regenerated set’s predecessor', async () => {
    const user = await userWithTotp();
    const regenerated = await gql(
      REGENERATE,
      { code: totpCode(user.secret, clock.now()) },
      { token: user.accessToken },
    );
    const fresh = regenerated.data?.regenerateRecoveryCodes.codes as string[];
    const { mfaToken } = await mfaRequired(user.user.email, user.password);
    expect(errorCode(await verify({ mfaToken, recoveryCode: user.codes[0] }))).toBe('INVALID_CODE');
    expect((await verify({ mfaToken, recoveryCode: fresh[0] })).errors).toBeUndefined();
  });

  it('kills the mfaToken after 5 wrong tries: the right code then finds nothing', async () => {
    const user = await userWithTotp();
    const { mfaToken } = await mfaRequired(user.user.email, user.password);
    const wrong = totpCode(user.secret, clock.now(), 5);
    for (let i = 0; i < 5; i++) {
      expectError(await verify({ mfaToken, code: wrong }), { code: 'INVALID_CODE', field: 'code' });
    }
    expectUnauthenticated(await verify({ mfaToken, code: totpCode(user.secret, clock.now()) }), 'INVALID_TOKEN');
  });

  it('compares exactly 5 of 30 wrong tries arriving at once; the other 25 find the token dead', async () => {
    const user = await userWithTotp();
    const { mfaToken } = await mfaRequired(user.user.email, user.password);
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => verify({ mfaToken, recoveryCode: 'AAAAAAAAAA' })),
    );
    const outcomes = answers.map((answer) => `${errorCode(answer)}:${extensionsOf(answer)?.reason ?? ''}`);
    expect(outcomes.filter((outcome) => outcome === 'INVALID_CODE:')).toHaveLength(5);
    expect(outcomes.filter((outcome) => outcome === 'UNAUTHENTICATED:INVALID_TOKEN')).toHaveLength(25);
    expectUnauthenticated(await verify({ mfaToken, code: totpCode(user.secret, clock.now()) }), 'INVALID_TOKEN');
  });

  it('accepts one TOTP code once across 30 sign-ins submitting it at once', async () => {
    const user = await userWithTotp();
    const tokens = await Promise.all(
      Array.from({ length: 30 }, async () => (await mfaRequired(user.user.email, user.password)).mfaToken),
    );
    const code = totpCode(user.secret, clock.now());
    const answers = await Promise.all(tokens.map((mfaToken) => verify({ mfaToken, code })));
    const outcomes = answers.map((answer) => errorCode(answer) ?? 'OK');
    expect(outcomes.filter((outcome) => outcome === 'OK')).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome === 'INVALID_CODE')).toHaveLength(29);
  });

  it('refuses an expired, unknown or malformed mfaToken with INVALID_TOKEN', async () => {
    const user = await userWithTotp();
    const { mfaToken } = await mfaRequired(user.user.email, user.password);
    clock.advance(5 * 60_000 + 1000);
    expectUnauthenticated(await verify({ mfaToken, code: totpCode(user.secret, clock.now()) }), 'INVALID_TOKEN');
    expectUnauthenticated(await verify({ mfaToken: 'x'.repeat(43), code: '123456' }), 'INVALID_TOKEN');
    expectUnauthenticated(await verify({ mfaToken: '', code: '123456' }), 'INVALID_TOKEN');
  });

  it('ends the step when the password changes between the two steps', async () => {
    const user = await userWithTotp();
    const { mfaToken } = await mfaRequired(user.user.email, user.password);
    const changed = await gql(
      'mutation($input: ChangePasswordInput!) { changePassword(input: $input) { accessToken } }',
      { input: { currentPassword: user.password, newPassword: 'another horse battery' } },
      { token: user.accessToken },
    );
    expect(changed.errors).toBeUndefined();
    expectUnauthenticated(await verify({ mfaToken, code: totpCode(user.secret, clock.now()) }), 'INVALID_TOKEN');
  });

  it('answers ACCOUNT_DISABLED when the account was disabled between the two steps', async () => {
    const admin = await signInAsAdmin(t);
    const user = await userWithTotp();
    const { mfaToken } = await mfaRequired(user.user.email, user.password);
    const disabled = await gql(
      'mutation($id: ID!) { setUserDisabled(userId: $id, disabled: true) { id } }',
      { id: user.user.id },
      { token: admin.accessToken },
    );
    expect(disabled.errors).toBeUndefined();
    expectError(await verify({ mfaToken, code: totpCode(user.secret, clock.now()) }), { code: 'ACCOUNT_DISABLED' });
    // And the first step says so too, after the right password only.
    expectError(await loginUser(t.gql, user.user.email, user.password), { code: 'ACCOUNT_DISABLED' });
  });

  it('asks loginWithOAuth for the second factor too, then verifyMfa signs in', async () => {
    const account = oidcAccount();
    const first = await loginWithCallback(gql, await authorize({ gql, oidc, github }, 'acme', account));
    const signedUp = first.data?.loginWithOAuth as Payload;
    const { secret } = await enrollTotp(gql, signedUp.accessToken, clock.now());
    clock.advance(TOTP_STEP_MS);
    const again = await loginWithCallback(gql, await authorize({ gql, oidc, github }, 'acme', account));
    expect(again.data ?? null).toBeNull();
    const extensions = extensionsOf(again) as { code: string; mfaToken: string; methods: string[] };
    expect(extensions).toEqual({
      code: 'MFA_REQUIRED',
      mfaToken: expect.any(String),
      methods: ['TOTP', 'RECOVERY_CODE'],
    });
    const verified = await verify({ mfaToken: extensions.mfaToken, code: totpCode(secret, clock.now()) });
    expect(verified.data?.verifyMfa.user.id).toBe(signedUp.user.id);
  });

  it('is a credential check: one per request', async () => {
    const answer = await gql(
      `mutation($a: VerifyMfaInput!, $b: VerifyMfaInput!) { a: verifyMfa(input: $a) { accessToken } b: verifyMfa(input: $b) { accessToken } }`,
      { a: { mfaToken: 'x', code: '123456' }, b: { mfaToken: 'y', code: '123456' } },
    );
    expect(errorCode(answer)).toBe('BAD_USER_INPUT');
    expect(answer.errors?.[0]?.message).toMatch(/only one credential/);
  });

  it('writes no mfaToken, TOTP secret or recovery code to the log', async () => {
    const user = await userWithTotp();
    const { mfaToken } = await mfaRequired(user.user.email, user.password);
    await verify({ mfaToken, recoveryCode: 'WRONGWRONG' });
    expect((await verify({ mfaToken, code: totpCode(user.secret, clock.now()) })).errors).toBeUndefined();
    const text = logs.text();
    expect(text.length).toBeGreaterThan(0);
    for (const secret of [mfaToken, user.secret, ...user.codes]) expect(text).not.toContain(secret);
  });
});

describe('wrong second factors count against the account', () => {
  const clock = new TestClock();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ clock, env: { RATE_LIMIT_LOGIN_ACCOUNT: '3/15m' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('locks the account after as many wrong factors as wrong passwords would, until RATE_LIMITED', async () => {
    const user = await registerUser(t.gql);
    const { secret } = await enrollTotp(t.gql, user.accessToken, clock.now());
    clock.advance(TOTP_STEP_MS);
    const first = await loginUser(t.gql, user.user.email, user.password);
    const mfaToken = extensionsOf(first)?.mfaToken as string;
    const verify = (code: string) => t.gql(VERIFY_MFA, { input: { mfaToken, code } });
    for (let i = 0; i < 3; i++) expect(errorCode(await verify(totpCode(secret, clock.now(), 5)))).toBe('INVALID_CODE');
    // Locked: the right code is refused before it is compared, and so is the right password.
    expectRateLimited(await verify(totpCode(secret, clock.now())), 15 * 60);
    expectRateLimited(await loginUser(t.gql, user.user.email, user.password), 15 * 60);
  });
});

describe('wrong second factors per account (RATE_LIMIT_MFA_ATTEMPTS)', () => {
  const clock = new TestClock();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ clock, env: { RATE_LIMIT_MFA_ATTEMPTS: '3/15m' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('are not forgotten when the right password signs in again: knowing it buys no more guesses', async () => {
    const user = await registerUser(t.gql);
    const { secret } = await enrollTotp(t.gql, user.accessToken, clock.now());
    clock.advance(TOTP_STEP_MS);
    const mfaToken = async () => extensionsOf(await loginUser(t.gql, user.user.email, user.password))?.mfaToken;
    const verify = async (token: string, code: string) => t.gql(VERIFY_MFA, { input: { mfaToken: token, code } });
    const wrong = totpCode(secret, clock.now(), 5);
    const first = await mfaToken();
    expect(errorCode(await verify(first, wrong))).toBe('INVALID_CODE');
    expect(errorCode(await verify(first, wrong))).toBe('INVALID_CODE');
    // The right password again (which forgets the account's failed sign-ins), a new token: one guess is left.
    const second = await mfaToken();
    expect(errorCode(await verify(second, wrong))).toBe('INVALID_CODE');
    expectRateLimited(await verify(second, totpCode(secret, clock.now())), 15 * 60);
    expectRateLimited(await verify(await mfaToken(), totpCode(secret, clock.now())), 15 * 60);
  });
});
