// The second factor under attack (issue 16 review): startPasskeyLogin floods (RATE_LIMIT_PASSKEY_START_IP), an
// mfaToken bound to its user, a recovery code and a TOTP enrolment raced, TOTP re-enrolment while on, malformed
// passkey input, and an account's deletion taking its second factors with it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MfaTotp, Passkey, RecoveryCode, Session } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { TestClock } from './support/clock.ts';
import { expectError, expectRateLimited } from './support/expect.ts';
import { errorCode, extensionsOf, type Gql, loginUser, me, refreshToken, registerUser } from './support/graphql.ts';
import { CONFIRM_TOTP, enrollTotp, START_TOTP, TOTP_STEP_MS, totpCode, VERIFY_MFA } from './support/mfa.ts';

const START_PASSKEY_LOGIN = 'mutation($email: String) { startPasskeyLogin(email: $email) { challengeId options } }';

describe.each(dialects())('the second factor under attack on %s', (dialect) => {
  const clock = new TestClock();
  let t: TestApp;
  const gql: Gql = (query, variables, options) => t.gql(query, variables, options);
  const fork = () => t.app.orm.em.fork() as Em;

  beforeAll(async () => {
    t = await startTestApp({ dialect, clock, env: { RATE_LIMIT_PASSKEY_START_IP: '4/15m' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  async function userWithTotp() {
    const user = await registerUser(t.gql);
    const { secret, codes } = await enrollTotp(gql, user.accessToken, clock.now());
    clock.advance(TOTP_STEP_MS);
    return { ...user, secret, codes };
  }

  async function mfaTokenOf(email: string, password: string): Promise<string> {
    const answer = await loginUser(t.gql, email, password);
    expectError(answer, expect.objectContaining({ code: 'MFA_REQUIRED' }));
    return extensionsOf(answer)?.mfaToken as string;
  }

  it('binds the mfaToken to its user: my right code does not finish another user’s step', async () => {
    const victim = await userWithTotp();
    const attacker = await userWithTotp();
    const victimToken = await mfaTokenOf(victim.user.email, victim.password);
    const mine = await gql(VERIFY_MFA, {
      input: { mfaToken: victimToken, code: totpCode(attacker.secret, clock.now()) },
    });
    expectError(mine, { code: 'INVALID_CODE', field: 'code' });
    const myRecovery = await gql(VERIFY_MFA, { input: { mfaToken: victimToken, recoveryCode: attacker.codes[0] } });
    expectError(myRecovery, { code: 'INVALID_CODE', field: 'recoveryCode' });
    // Two factors at once are refused before either is compared.
    const both = await gql(VERIFY_MFA, {
      input: { mfaToken: victimToken, code: totpCode(victim.secret, clock.now()), recoveryCode: victim.codes[0] },
    });
    expect(errorCode(both)).toBe('BAD_USER_INPUT');
    // The victim's own code still works (three tries of five were used).
    const own = await gql(VERIFY_MFA, { input: { mfaToken: victimToken, code: totpCode(victim.secret, clock.now()) } });
    expect(own.errors).toBeUndefined();
    expect(own.data?.verifyMfa.user.id).toBe(victim.user.id);
  });

  it('accepts one recovery code once when 20 sign-ins submit it at once', async () => {
    const user = await userWithTotp();
    const tokens = await Promise.all(Array.from({ length: 20 }, () => mfaTokenOf(user.user.email, user.password)));
    const answers = await Promise.all(
      tokens.map((mfaToken) => gql(VERIFY_MFA, { input: { mfaToken, recoveryCode: user.codes[0] } })),
    );
    expect(answers.filter((answer) => answer.errors === undefined)).toHaveLength(1);
    expect(answers.filter((answer) => errorCode(answer) === 'INVALID_CODE')).toHaveLength(19);
  });

  it('confirms a TOTP enrolment once when codes of two accepted steps arrive at once: one set of recovery codes', async () => {
    const user = await registerUser(t.gql);
    const started = await gql(START_TOTP, {}, { token: user.accessToken });
    const secret = started.data?.startTotpEnrollment.secret as string;
    const now = clock.now();
    const answers = await Promise.all(
      [0, 1, 0, 1, -1, 0].map((steps) =>
        gql(CONFIRM_TOTP, { code: totpCode(secret, now, steps) }, { token: user.accessToken }),
      ),
    );
    const won = answers.filter((answer) => answer.errors === undefined);
    expect(won).toHaveLength(1);
    for (const answer of answers) {
      if (answer.errors) expect(['INVALID_CODE', 'BAD_USER_INPUT']).toContain(errorCode(answer));
    }
    const codes = won[0]?.data?.confirmTotpEnrollment.codes as string[];
    expect(codes).toHaveLength(10);
    expect(await fork().count(RecoveryCode, { user: user.user.id })).toBe(10);
    clock.advance(2 * TOTP_STEP_MS);
    // The codes shown are the ones kept.
    const mfaToken = await mfaTokenOf(user.user.email, user.password);
    const signedIn = await gql(VERIFY_MFA, { input: { mfaToken, recoveryCode: codes[9] } });
    expect(signedIn.errors).toBeUndefined();
  });

  it('refuses a new TOTP enrolment while TOTP is on, keeping the working secret', async () => {
    const user = await userWithTotp();
    const again = await gql(START_TOTP, {}, { token: user.accessToken });
    expect(errorCode(again)).toBe('BAD_USER_INPUT');
    expect(again.data ?? null).toBeNull();
    const mfaToken = await mfaTokenOf(user.user.email, user.password);
    const answer = await gql(VERIFY_MFA, { input: { mfaToken, code: totpCode(user.secret, clock.now()) } });
    expect(answer.errors).toBeUndefined();
  });

  it('answers malformed passkey input with the documented codes, never an internal error', async () => {
    const user = await userWithTotp();
    const mfaToken = await mfaTokenOf(user.user.email, user.password);
    for (const passkeyResponse of ['text', 7, [], { id: 12, response: 'x' }, { id: 'A'.repeat(5000), response: {} }]) {
      const answer = await gql(VERIFY_MFA, { input: { mfaToken, passkeyResponse } });
      expectError(answer, { code: 'INVALID_CODE', field: 'passkeyResponse' });
    }
    for (const response of ['text', [], 0, { id: 'AAAA', response: { userHandle: 5 } }]) {
      const answer = await gql(
        'mutation($input: PasskeyLoginInput!) { loginWithPasskey(input: $input) { accessToken } }',
        { input: { challengeId: 'c'.repeat(2000), response } },
      );
      expect(['INVALID_CREDENTIALS', 'BAD_USER_INPUT'], JSON.stringify(answer.errors)).toContain(errorCode(answer));
    }
    const renamed = await gql(
      'mutation($id: ID!) { renamePasskey(id: $id, name: "x") { id } }',
      { id: 'x'.repeat(200) },
      { token: user.accessToken },
    );
    expect(errorCode(renamed)).toBe('NOT_FOUND');
  });

  it('removes the TOTP secret, recovery codes and passkeys with the account', async () => {
    const user = await userWithTotp();
    const deleted = await gql(
      'mutation($password: String) { deleteAccount(password: $password) }',
      { password: user.password },
      { token: user.accessToken },
    );
    expect(deleted.errors).toBeUndefined();
    const em = fork();
    expect(await em.count(MfaTotp, { user: user.user.id })).toBe(0);
    expect(await em.count(RecoveryCode, { user: user.user.id })).toBe(0);
    expect(await em.count(Passkey, { user: user.user.id })).toBe(0);
  });

  it('leaves no session to a password sign-in that raced TOTP being turned on: it gets MFA_REQUIRED or is revoked', async () => {
    const user = await registerUser(t.gql);
    const started = await gql(START_TOTP, {}, { token: user.accessToken });
    const secret = started.data?.startTotpEnrollment.secret as string;
    const logins = () => Array.from({ length: 15 }, () => loginUser(t.gql, user.user.email, user.password));
    const early = logins();
    const confirmed = gql(CONFIRM_TOTP, { code: totpCode(secret, clock.now()) }, { token: user.accessToken });
    const late = logins();
    expect((await confirmed).errors).toBeUndefined();
    const answers = await Promise.all([...early, ...late]);
    for (const answer of answers) {
      if (answer.errors) {
        expect(errorCode(answer)).toBe('MFA_REQUIRED');
        continue;
      }
      // A session opened without the second factor must have been ended by the change.
      expect(errorCode(await me(t.gql, answer.data?.login.accessToken as string))).toBe('UNAUTHENTICATED');
      expect(errorCode(await refreshToken(t.gql, answer.data?.login.refreshToken as string))).toBe('UNAUTHENTICATED');
    }
    // Only the caller's own session (which turned TOTP on) remains.
    expect(await fork().count(Session, { user: user.user.id, revokedAt: null })).toBe(1);
  });

  // Last: it uses up this app's passkey starts.
  it('limits startPasskeyLogin per client IP (RATE_LIMIT_PASSKEY_START_IP): each start stores a challenge', async () => {
    const answers = await Promise.all(Array.from({ length: 10 }, () => gql(START_PASSKEY_LOGIN, {})));
    expect(answers.filter((answer) => answer.errors === undefined)).toHaveLength(4);
    const refused = answers.filter((answer) => answer.errors !== undefined);
    expect(refused).toHaveLength(6);
    for (const answer of refused) expectRateLimited(answer, 900);
    // With an email too: the limit is the caller's, not the account's.
    expectRateLimited(await gql(START_PASSKEY_LOGIN, { email: 'someone@example.com' }), 900);
  });
});
