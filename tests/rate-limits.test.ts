// Throttles of the credential-checking operations: each answers RATE_LIMITED with retryAfter, before any
// password or code is checked, and resets as documented.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuditEvent } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { expectRateLimited } from './support/expect.ts';
import { errorCode, loginUser, refreshToken, registerUser, uniqueEmail } from './support/graphql.ts';
import { serviceAvailable, startRedis } from './support/services.ts';

const apps: TestApp[] = [];
async function app(env: Record<string, string>) {
  const t = await startTestApp({ env });
  apps.push(t);
  return t;
}
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(apps.splice(0).map((t) => t.close()));
});

const lockouts = (t: TestApp) =>
  (t.app.orm.em.fork() as Em).find(AuditEvent, { type: 'LOCKOUT' }, { orderBy: { id: 'asc' } });

describe('failed logins per account', () => {
  it('locks the account after the limit, before any password is checked, and backs off exponentially', async () => {
    const t = await app({ RATE_LIMIT_LOGIN_ACCOUNT: '2/1s', RATE_LIMIT_LOGIN_MAX_BLOCK: '1h' });
    const user = await registerUser(t.gql);
    const email = user.user.email;
    expect(errorCode(await loginUser(t.gql, email, 'wrong password 1'))).toBe('INVALID_CREDENTIALS');
    expect(errorCode(await loginUser(t.gql, email, 'wrong password 2'))).toBe('INVALID_CREDENTIALS');
    const verify = vi.spyOn(t.app.services.hasher, 'verify');
    // Locked: even the right password is refused, and never compared.
    expectRateLimited(await loginUser(t.gql, email, user.password), 1);
    expectRateLimited(await loginUser(t.gql, ` ${email.toUpperCase()} `, user.password), 1);
    expect(verify).not.toHaveBeenCalled();
    const first = await lockouts(t);
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ userId: user.user.id, ipAddress: '127.0.0.1' });
    expect(JSON.parse(first[0]?.detail ?? '{}')).toEqual({ scope: 'account', retryAfter: 1, lockouts: 1 });

    // The first lock lasts one window; the next one twice as long.
    await sleep(1100);
    expect(errorCode(await loginUser(t.gql, email, 'wrong password 3'))).toBe('INVALID_CREDENTIALS');
    expect(errorCode(await loginUser(t.gql, email, 'wrong password 4'))).toBe('INVALID_CREDENTIALS');
    const locked = await loginUser(t.gql, email, user.password);
    expectRateLimited(locked, 2);
    expect(locked.errors?.[0]?.extensions?.retryAfter).toBe(2);
    expect(JSON.parse((await lockouts(t))[1]?.detail ?? '{}')).toEqual({
      scope: 'account',
      retryAfter: 2,
      lockouts: 2,
    });
    await sleep(1100);
    expectRateLimited(await loginUser(t.gql, email, user.password), 1);
    await sleep(1000);
    expect((await loginUser(t.gql, email, user.password)).data?.login.user.id).toBe(user.user.id);
  });

  it('resets the count on a successful login', async () => {
    const t = await app({ RATE_LIMIT_LOGIN_ACCOUNT: '3/15m' });
    const user = await registerUser(t.gql);
    for (let round = 0; round < 3; round++) {
      expect(errorCode(await loginUser(t.gql, user.user.email, 'wrong password'))).toBe('INVALID_CREDENTIALS');
      expect(errorCode(await loginUser(t.gql, user.user.email, 'wrong password'))).toBe('INVALID_CREDENTIALS');
      expect((await loginUser(t.gql, user.user.email, user.password)).data?.login).toBeTruthy();
    }
    expect(await lockouts(t)).toHaveLength(0);
  });

  it('uses the real default of 5 failures per 15 minutes, unknown emails included', async () => {
    const t = await app({ RATE_LIMIT_LOGIN_ACCOUNT: '' });
    const email = uniqueEmail('nobody');
    for (let i = 0; i < 5; i++) {
      expect(errorCode(await loginUser(t.gql, email, 'wrong password'))).toBe('INVALID_CREDENTIALS');
    }
    expectRateLimited(await loginUser(t.gql, email, 'wrong password'), 15 * 60);
    const [lockout] = await lockouts(t);
    expect(lockout?.userId).toBeNull();
    expect(JSON.parse(lockout?.detail ?? '{}')).toMatchObject({ scope: 'account', retryAfter: 900 });
  });

  it('counts wrong current passwords of changePassword against the same limit', async () => {
    const t = await app({ RATE_LIMIT_LOGIN_ACCOUNT: '2/15m' });
    const user = await registerUser(t.gql);
    const change = (currentPassword: string) =>
      t.gql(
        'mutation($input: ChangePasswordInput!) { changePassword(input: $input) { accessToken } }',
        { input: { currentPassword, newPassword: 'a new password' } },
        { token: user.accessToken },
      );
    expect(errorCode(await change('wrong password'))).toBe('INVALID_CREDENTIALS');
    expect(errorCode(await change('wrong password'))).toBe('INVALID_CREDENTIALS');
    expectRateLimited(await change(user.password), 15 * 60);
    expectRateLimited(await loginUser(t.gql, user.user.email, user.password), 15 * 60);
    const failed = await (t.app.orm.em.fork() as Em).count(AuditEvent, { type: 'PASSWORD_CHANGE_FAILED' });
    expect(failed).toBe(2);
  });
});

describe('failed logins per IP', () => {
  it('refuses every login from an IP past its limit, and honours X-Forwarded-For only behind a trusted proxy', async () => {
    const t = await app({ RATE_LIMIT_LOGIN_IP: '3/15m', TRUST_PROXY: 'true' });
    const user = await registerUser(t.gql);
    const from = (ip: string) => ({ 'x-forwarded-for': ip });
    for (let i = 0; i < 3; i++) {
      const response = await loginUser(t.gql, uniqueEmail(), 'wrong password', from('203.0.113.7'));
      expect(errorCode(response)).toBe('INVALID_CREDENTIALS');
    }
    expectRateLimited(await loginUser(t.gql, user.user.email, user.password, from('203.0.113.7')), 15 * 60);
    // Another client is not affected.
    expect((await loginUser(t.gql, user.user.email, user.password, from('203.0.113.8'))).data?.login).toBeTruthy();
    const [lockout] = await lockouts(t);
    expect(lockout).toMatchObject({ userId: null, ipAddress: '203.0.113.7' });
    expect(JSON.parse(lockout?.detail ?? '{}')).toMatchObject({ scope: 'ip', retryAfter: 900 });
  });

  it('does not slow down successful logins', async () => {
    const t = await app({ RATE_LIMIT_LOGIN_IP: '3/15m', RATE_LIMIT_LOGIN_ACCOUNT: '3/15m' });
    const user = await registerUser(t.gql);
    for (let i = 0; i < 10; i++) {
      expect((await loginUser(t.gql, user.user.email, user.password)).data?.login).toBeTruthy();
    }
  });
});

describe('other throttles', () => {
  it('limits registrations per IP', async () => {
    const t = await app({ RATE_LIMIT_REGISTER_IP: '2/1h' });
    await registerUser(t.gql);
    await registerUser(t.gql);
    const third = await t.gql('mutation($input: RegisterInput!) { register(input: $input) { accessToken } }', {
      input: { email: uniqueEmail(), password: 'correct horse battery' },
    });
    expectRateLimited(third, 3600);
  });

  it('limits refreshes per session, not per user', async () => {
    const t = await app({ RATE_LIMIT_REFRESH_SESSION: '2/1m' });
    const user = await registerUser(t.gql);
    const other = await loginUser(t.gql, user.user.email, user.password);
    let token = user.refreshToken;
    for (let i = 0; i < 2; i++) {
      const refreshed = await refreshToken(t.gql, token);
      token = refreshed.data?.refresh.refreshToken as string;
      expect(token).toBeTruthy();
    }
    expectRateLimited(await refreshToken(t.gql, token), 60);
    expect((await refreshToken(t.gql, other.data?.login.refreshToken as string)).data?.refresh).toBeTruthy();
    // A forged token naming the session does not spend its allowance: it is refused as invalid first.
    const [sessionId] = token.split('.');
    const forged = await refreshToken(t.gql, `${sessionId}.9.${'A'.repeat(43)}.${'B'.repeat(43)}`);
    expect(errorCode(forged)).toBe('UNAUTHENTICATED');
  });

  it('limits wrong verification and reset codes per account, before comparing', async () => {
    const t = await app({ RATE_LIMIT_CODE_ATTEMPTS: '2/15m' });
    const user = await registerUser(t.gql);
    const verify = (code: string) =>
      t.gql('mutation($code: String!) { verifyEmail(code: $code) { id } }', { code }, { token: user.accessToken });
    expect(errorCode(await verify('AAAAAA'))).toBe('INVALID_CODE');
    expect(errorCode(await verify('BBBBBB'))).toBe('INVALID_CODE');
    expectRateLimited(await verify('CCCCCC'), 15 * 60);
    const reset = (email: string) =>
      t.gql('mutation($input: ResetPasswordInput!) { resetPassword(input: $input) }', {
        input: { email, code: 'AAAAAA', newPassword: 'a new password' },
      });
    // The same account's budget is spent already; an unknown address has its own.
    expectRateLimited(await reset(user.user.email), 15 * 60);
    const nobody = uniqueEmail('nobody');
    expect(errorCode(await reset(nobody))).toBe('INVALID_CODE');
    expect(errorCode(await reset(nobody))).toBe('INVALID_CODE');
    expectRateLimited(await reset(nobody), 15 * 60);
  });

  it('limits OAuth starts per IP', async () => {
    const t = await app({
      RATE_LIMIT_OAUTH_START_IP: '2/15m',
      OAUTH_GITHUB_CLIENT_ID: 'client',
      OAUTH_GITHUB_CLIENT_SECRET: 'secret',
      OAUTH_REDIRECT_URIS: 'https://app.test/callback',
    });
    const start = () =>
      t.gql('mutation { startOAuth(provider: "github", redirectUri: "https://app.test/callback") { state } }');
    expect((await start()).data?.startOAuth.state).toBeTruthy();
    expect((await start()).data?.startOAuth.state).toBeTruthy();
    expectRateLimited(await start(), 15 * 60);
  });
});

describe.skipIf(!serviceAvailable('redis-server'))('with Redis', () => {
  it('counts failed logins across instances', async () => {
    const redis = await startRedis();
    try {
      const env = { REDIS_URL: redis.url, RATE_LIMIT_LOGIN_ACCOUNT: '2/15m' };
      const a = await app(env);
      const b = await app({ ...env, DATABASE_URL: a.databaseUrl });
      const user = await registerUser(a.gql);
      expect(errorCode(await loginUser(a.gql, user.user.email, 'wrong password'))).toBe('INVALID_CREDENTIALS');
      expect(errorCode(await loginUser(b.gql, user.user.email, 'wrong password'))).toBe('INVALID_CREDENTIALS');
      expectRateLimited(await loginUser(a.gql, user.user.email, user.password), 15 * 60);
      expectRateLimited(await loginUser(b.gql, user.user.email, user.password), 15 * 60);
    } finally {
      await Promise.all(apps.splice(0).map((t) => t.close()));
      await redis.stop();
    }
  });
});
