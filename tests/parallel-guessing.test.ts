// Guesses sent all at once, as an attacker would: every check of a password or code reserves its attempt before
// comparing, so no burst gets more comparisons than the limit; wrong passwords to deleteAccount and changePassword
// are failed sign-ins of the account; proving the email (reset, verification) ends a lockout. On SQLite and
// MariaDB, with the limits in memory and in Redis, at the default limits.
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuditEvent, type AuditEventType, User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { type Dialect, dialects, startTestApp, type TestApp } from './support/app.ts';
import { expectRateLimited } from './support/expect.ts';
import { errorCode, type Gql, type GraphQLResponse, loginUser, registerUser, uniqueEmail } from './support/graphql.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';
import { mailedCode, type SmtpCapture, startSmtpServer } from './support/smtp.ts';

const DELETE = 'mutation($password: String) { deleteAccount(password: $password) }';
const CHANGE = 'mutation($input: ChangePasswordInput!) { changePassword(input: $input) { accessToken } }';
const VERIFY = 'mutation($code: String!) { verifyEmail(code: $code) { id emailVerified } }';
const REQUEST_VERIFICATION = 'mutation { requestEmailVerification }';
const REQUEST_RESET = 'mutation($email: String!) { requestPasswordReset(email: $email) }';
const RESET = 'mutation($input: ResetPasswordInput!) { resetPassword(input: $input) }';

/** The documented defaults (API.md): 5 failed sign-ins per account and 100 per IP per 15 minutes, 10 code tries. */
const ACCOUNT_LIMIT = 5;
const IP_LIMIT = 100;
const CODE_LIMIT = 10;
const WINDOW_SECONDS = 15 * 60;

/** How many answers had each error code ('OK' for none), e.g. { INVALID_CREDENTIALS: 5, RATE_LIMITED: 35 }. */
function tally(responses: readonly GraphQLResponse[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const response of responses) {
    const code = errorCode(response) ?? 'OK';
    counts[code] = (counts[code] ?? 0) + 1;
  }
  return counts;
}

const wrong = (i: number) => `wrong password ${i}`;
const times = <T>(n: number, make: (i: number) => Promise<T>) =>
  Promise.all(Array.from({ length: n }, (_, i) => make(i)));

const backends: { dialect: Dialect; limits: 'memory' | 'redis' }[] = dialects().flatMap((dialect) => [
  { dialect, limits: 'memory' as const },
  ...(serviceAvailable('redis-server') ? [{ dialect, limits: 'redis' as const }] : []),
]);

describe.each(backends)('on $dialect with the limits in $limits', ({ dialect, limits }) => {
  let redis: RunningService | undefined;
  let smtp: SmtpCapture;
  const apps: TestApp[] = [];

  beforeAll(async () => {
    smtp = await startSmtpServer();
    if (limits === 'redis') redis = await startRedis();
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await Promise.all(apps.splice(0).map((t) => t.close()));
    // Every test client calls from 127.0.0.1: each test starts with no count in Redis either.
    if (redis) {
      const client = new Redis(redis.url);
      await client.flushall();
      client.disconnect();
    }
  });
  afterAll(async () => {
    await smtp.close();
    await redis?.stop();
  });

  async function app(): Promise<TestApp> {
    const t = await startTestApp({
      dialect,
      env: {
        // The defaults, not the test launcher's generous limits.
        RATE_LIMIT_LOGIN_ACCOUNT: '',
        RATE_LIMIT_LOGIN_IP: '',
        RATE_LIMIT_CODE_ATTEMPTS: '',
        SMTP_URL: smtp.url,
        // bcrypt slow enough (a few ms) that a burst's comparisons really overlap, as they do at the default cost.
        BCRYPT_COST: '8',
        ...(redis ? { REDIS_URL: redis.url } : {}),
      },
    });
    apps.push(t);
    return t;
  }

  /** Counts the password comparisons that really run (bcrypt still does them). */
  const comparisons = (t: TestApp) => vi.spyOn(t.app.services.hasher, 'verify');

  const events = (t: TestApp, type: AuditEventType) =>
    (t.app.orm.em.fork() as Em).find(AuditEvent, { type }, { orderBy: { id: 'asc' } });

  const deleteAccount = (gql: Gql, token: string, password: string) => gql(DELETE, { password }, { token });
  const changePassword = (gql: Gql, token: string, currentPassword: string) =>
    gql(CHANGE, { input: { currentPassword, newPassword: 'a brand new password' } }, { token });

  it('40 logins at once, 39 wrong and the right password last: 5 are compared and the right one is refused', async () => {
    const t = await app();
    const user = await registerUser(t.gql);
    const compared = comparisons(t);
    const responses = await times(40, (i) => loginUser(t.gql, user.user.email, i === 39 ? user.password : wrong(i)));
    expect(tally(responses)).toEqual({ INVALID_CREDENTIALS: ACCOUNT_LIMIT, RATE_LIMITED: 40 - ACCOUNT_LIMIT });
    expect(compared).toHaveBeenCalledTimes(ACCOUNT_LIMIT);
    expectRateLimited(responses[39] as GraphQLResponse, WINDOW_SECONDS);
    // Locked: the right password is refused again, alone, without a comparison.
    expectRateLimited(await loginUser(t.gql, user.user.email, user.password), WINDOW_SECONDS);
    expect(compared).toHaveBeenCalledTimes(ACCOUNT_LIMIT);
    expect(await events(t, 'LOGIN_FAILED')).toHaveLength(ACCOUNT_LIMIT);
    const lockouts = await events(t, 'LOCKOUT');
    expect(lockouts).toHaveLength(1);
    expect(lockouts[0]?.userId).toBe(user.user.id);
    expect(JSON.parse(lockouts[0]?.detail ?? '{}')).toEqual({ scope: 'account', retryAfter: 900, lockouts: 1 });
  });

  it('150 wrong logins at once on one account: 5 compared, 145 refused, and only those 5 count against the IP', async () => {
    const t = await app();
    const user = await registerUser(t.gql);
    const compared = comparisons(t);
    const burst = await times(150, (i) => loginUser(t.gql, user.user.email, wrong(i)));
    expect(tally(burst)).toEqual({ INVALID_CREDENTIALS: ACCOUNT_LIMIT, RATE_LIMITED: 150 - ACCOUNT_LIMIT });
    expect(compared).toHaveBeenCalledTimes(ACCOUNT_LIMIT);
    // The IP has exactly IP_LIMIT - 5 failures left: the refused guesses spent none of its budget.
    const others = await times(IP_LIMIT - ACCOUNT_LIMIT, (i) => loginUser(t.gql, uniqueEmail('other'), wrong(i)));
    expect(tally(others)).toEqual({ INVALID_CREDENTIALS: IP_LIMIT - ACCOUNT_LIMIT });
    expectRateLimited(await loginUser(t.gql, uniqueEmail('other'), wrong(0)), WINDOW_SECONDS);
    expect(compared).toHaveBeenCalledTimes(IP_LIMIT);
  });

  it('200 wrong logins at once from one IP for 200 emails: 100 compared, 100 refused, the IP locked', async () => {
    const t = await app();
    const user = await registerUser(t.gql);
    const compared = comparisons(t);
    const responses = await times(200, (i) => loginUser(t.gql, uniqueEmail('spray'), wrong(i)));
    expect(tally(responses)).toEqual({ INVALID_CREDENTIALS: IP_LIMIT, RATE_LIMITED: 200 - IP_LIMIT });
    expect(compared).toHaveBeenCalledTimes(IP_LIMIT);
    expectRateLimited(await loginUser(t.gql, user.user.email, user.password), WINDOW_SECONDS);
    expect(compared).toHaveBeenCalledTimes(IP_LIMIT);
    const lockouts = await events(t, 'LOCKOUT');
    expect(lockouts.map((e) => [e.userId, JSON.parse(e.detail ?? '{}').scope])).toEqual([[null, 'ip']]);
  });

  it('successful logins spend none of the budget: after 40 (5 at a time), 40 wrong ones at once still get 5 comparisons', async () => {
    const t = await app();
    const user = await registerUser(t.gql);
    // No more than the limit at once: a check is reserved before it is known to be right, so an account has at
    // most ACCOUNT_LIMIT password checks in flight.
    for (let round = 0; round < 8; round++) {
      const signedIn = await times(ACCOUNT_LIMIT, () => loginUser(t.gql, user.user.email, user.password));
      expect(tally(signedIn)).toEqual({ OK: ACCOUNT_LIMIT });
    }
    const guesses = await times(40, (i) => loginUser(t.gql, user.user.email, wrong(i)));
    expect(tally(guesses)).toEqual({ INVALID_CREDENTIALS: ACCOUNT_LIMIT, RATE_LIMITED: 40 - ACCOUNT_LIMIT });
  });

  it('deleteAccount: 40 wrong passwords at once are failed sign-ins that share the login count, then refused while locked', async () => {
    const t = await app();
    const user = await registerUser(t.gql);
    const compared = comparisons(t);
    for (let i = 0; i < 3; i++) {
      expect(errorCode(await loginUser(t.gql, user.user.email, wrong(i)))).toBe('INVALID_CREDENTIALS');
    }
    const guesses = await times(40, (i) => deleteAccount(t.gql, user.accessToken, wrong(i)));
    expect(tally(guesses)).toEqual({ INVALID_CREDENTIALS: ACCOUNT_LIMIT - 3, RATE_LIMITED: 40 - (ACCOUNT_LIMIT - 3) });
    expect(compared).toHaveBeenCalledTimes(ACCOUNT_LIMIT);
    // Locked: the right password is refused by deleteAccount and by login alike, and compared by neither.
    expectRateLimited(await deleteAccount(t.gql, user.accessToken, user.password), WINDOW_SECONDS);
    expectRateLimited(await loginUser(t.gql, user.user.email, user.password), WINDOW_SECONDS);
    expect(compared).toHaveBeenCalledTimes(ACCOUNT_LIMIT);
    expect(await (t.app.orm.em.fork() as Em).count(User, { id: user.user.id })).toBe(1);
    expect(await events(t, 'ACCOUNT_DELETION_FAILED')).toHaveLength(ACCOUNT_LIMIT - 3);
    const lockouts = await events(t, 'LOCKOUT');
    expect(lockouts.map((e) => [e.userId, JSON.parse(e.detail ?? '{}').scope])).toEqual([[user.user.id, 'account']]);
  });

  it('deleteAccount refuses the right password once logins have locked the account', async () => {
    const t = await app();
    const user = await registerUser(t.gql);
    await times(ACCOUNT_LIMIT, (i) => loginUser(t.gql, user.user.email, wrong(i)));
    expectRateLimited(await deleteAccount(t.gql, user.accessToken, user.password), WINDOW_SECONDS);
    expect(await (t.app.orm.em.fork() as Em).count(User, { id: user.user.id })).toBe(1);
  });

  it('changePassword: 40 wrong current passwords at once lock sign-in after 5 comparisons', async () => {
    const t = await app();
    const user = await registerUser(t.gql);
    const compared = comparisons(t);
    const guesses = await times(40, (i) => changePassword(t.gql, user.accessToken, wrong(i)));
    expect(tally(guesses)).toEqual({ INVALID_CREDENTIALS: ACCOUNT_LIMIT, RATE_LIMITED: 40 - ACCOUNT_LIMIT });
    expect(compared).toHaveBeenCalledTimes(ACCOUNT_LIMIT);
    expectRateLimited(await changePassword(t.gql, user.accessToken, user.password), WINDOW_SECONDS);
    expectRateLimited(await loginUser(t.gql, user.user.email, user.password), WINDOW_SECONDS);
  });

  it('changePassword and deleteAccount refuse a current password that only starts with the right one (bcrypt reads 72 bytes)', async () => {
    const t = await app();
    const password = 'p'.repeat(72);
    const user = await registerUser(t.gql, { password });
    const changed = await changePassword(t.gql, user.accessToken, `${password}tail`);
    expect(errorCode(changed)).toBe('INVALID_CREDENTIALS');
    expect(changed.errors?.[0]?.extensions?.field).toBe('currentPassword');
    expect(errorCode(await deleteAccount(t.gql, user.accessToken, `${password}tail`))).toBe('INVALID_CREDENTIALS');
    expect((await loginUser(t.gql, user.user.email, password)).data?.login.user.id).toBe(user.user.id);
  });

  it('verifyEmail: 40 wrong codes at once get 10 tries, the rest RATE_LIMITED', async () => {
    const t = await app();
    const user = await registerUser(t.gql);
    const answers = await times(40, () => t.gql(VERIFY, { code: 'AAAAAA' }, { token: user.accessToken }));
    expect(tally(answers)).toEqual({ INVALID_CODE: CODE_LIMIT, RATE_LIMITED: 40 - CODE_LIMIT });
    expect(await events(t, 'EMAIL_VERIFICATION_FAILED')).toHaveLength(CODE_LIMIT);
  });

  it('resetPassword: 40 wrong codes at once get 10 tries, for an account and for an unknown address alike', async () => {
    const t = await app();
    const user = await registerUser(t.gql);
    const reset = (email: string) =>
      t.gql(RESET, { input: { email, code: 'AAAAAA', newPassword: 'a brand new password' } });
    for (const email of [user.user.email, uniqueEmail('nobody')]) {
      const answers = await times(40, () => reset(email));
      expect(tally(answers)).toEqual({ INVALID_CODE: CODE_LIMIT, RATE_LIMITED: 40 - CODE_LIMIT });
    }
    expect(await events(t, 'PASSWORD_RESET_FAILED')).toHaveLength(2 * CODE_LIMIT);
  });

  it('a password reset with the mailed code ends the lockout: the new password signs in at once', async () => {
    const t = await app();
    const user = await registerUser(t.gql);
    await times(ACCOUNT_LIMIT, (i) => loginUser(t.gql, user.user.email, wrong(i)));
    expectRateLimited(await loginUser(t.gql, user.user.email, user.password), WINDOW_SECONDS);
    expect((await t.gql(REQUEST_RESET, { email: user.user.email })).data?.requestPasswordReset).toBe(true);
    const code = mailedCode(await smtp.waitForMail(user.user.email));
    const newPassword = 'the owner is back';
    const reset = await t.gql(RESET, { input: { email: user.user.email, code, newPassword } });
    expect(reset.data?.resetPassword).toBe(true);
    expect((await loginUser(t.gql, user.user.email, newPassword)).data?.login.user.id).toBe(user.user.id);
    // The count starts afresh: the full budget again, then a new lockout.
    const guesses = await times(40, (i) => loginUser(t.gql, user.user.email, wrong(i)));
    expect(tally(guesses)).toEqual({ INVALID_CREDENTIALS: ACCOUNT_LIMIT, RATE_LIMITED: 40 - ACCOUNT_LIMIT });
    const lockouts = await events(t, 'LOCKOUT');
    expect(lockouts.map((e) => JSON.parse(e.detail ?? '{}'))).toEqual([
      { scope: 'account', retryAfter: 900, lockouts: 1 },
      { scope: 'account', retryAfter: 900, lockouts: 1 },
    ]);
  });

  it('verifying the email with the mailed code ends the lockout', async () => {
    const t = await app();
    const user = await registerUser(t.gql);
    await times(ACCOUNT_LIMIT, (i) => loginUser(t.gql, user.user.email, wrong(i)));
    expectRateLimited(await loginUser(t.gql, user.user.email, user.password), WINDOW_SECONDS);
    expect((await t.gql(REQUEST_VERIFICATION, {}, { token: user.accessToken })).data?.requestEmailVerification).toBe(
      true,
    );
    const code = mailedCode(await smtp.waitForMail(user.user.email));
    const verified = await t.gql(VERIFY, { code }, { token: user.accessToken });
    expect(verified.data?.verifyEmail).toEqual({ id: user.user.id, emailVerified: true });
    expect((await loginUser(t.gql, user.user.email, user.password)).data?.login.user.id).toBe(user.user.id);
  });
});
