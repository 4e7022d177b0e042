// TOTP and recovery codes through the public API (API.md "Second factor"): enrolment, drift, replay, concurrent
// submissions of one code, recovery codes, secrets at rest, MFA_CHANGED for the other sessions, resetUserMfa,
// and the MFA key's configuration. Codes come from otplib at the injected clock's time.
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';
import { MfaTotp, RecoveryCode } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { TestClock } from './support/clock.ts';
import { expectError, expectUnauthenticated } from './support/expect.ts';
import { errorCode, type Gql, me, registerUser, signIn } from './support/graphql.ts';
import {
  CONFIRM_TOTP,
  DISABLE_TOTP,
  enrollTotp,
  MFA_STATUS,
  REGENERATE,
  START_TOTP,
  TOTP_STEP_MS,
  totpCode,
} from './support/mfa.ts';
import { subscribe } from './support/subscriptions.ts';

const ALPHABET = /^[ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{10}$/;

describe.each(dialects())('TOTP and recovery codes on %s', (dialect) => {
  const clock = new TestClock();
  let t: TestApp;
  const gql: Gql = (query, variables, options) => t.gql(query, variables, options);

  beforeAll(async () => {
    t = await startTestApp({ dialect, clock, env: { PRODUCT_NAME: 'Acme Auth' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  const status = async (token: string) =>
    (await gql<{ me: { mfaEnabled: boolean; mfaMethods: string[] } }>(MFA_STATUS, {}, { token })).data?.me;
  const regenerate = (token: string, code: string) =>
    gql<{ regenerateRecoveryCodes: { codes: string[] } }>(REGENERATE, { code }, { token });
  const nextStep = (steps = 1) => clock.advance(steps * TOTP_STEP_MS);

  it('enrols: a secret, an otpauth URI naming PRODUCT_NAME and the email, a QR code; on only once confirmed', async () => {
    const user = await registerUser(t.gql);
    expect(await status(user.accessToken)).toMatchObject({ mfaEnabled: false, mfaMethods: [] });
    const started = await gql<{ startTotpEnrollment: { secret: string; otpauthUri: string; qrCodeSvg: string } }>(
      START_TOTP,
      {},
      { token: user.accessToken },
    );
    const enrolment = started.data?.startTotpEnrollment;
    expect(enrolment?.secret).toMatch(/^[A-Z2-7]{32}$/);
    const uri = new URL(enrolment?.otpauthUri as string);
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe(`/Acme Auth:${user.user.email}`);
    expect(uri.searchParams.get('issuer')).toBe('Acme Auth');
    expect(uri.searchParams.get('secret')).toBe(enrolment?.secret);
    expect(uri.searchParams.get('algorithm')).toBe('SHA1');
    expect(uri.searchParams.get('digits')).toBe('6');
    expect(uri.searchParams.get('period')).toBe('30');
    expect(enrolment?.qrCodeSvg).toMatch(/^<svg[\s\S]*<\/svg>$/);
    // Pending: not on yet, and a wrong code does not turn it on.
    expect(await status(user.accessToken)).toMatchObject({ mfaEnabled: false, mfaMethods: [] });
    const secret = enrolment?.secret as string;
    expectError(await gql(CONFIRM_TOTP, { code: totpCode(secret, clock.now(), 3) }, { token: user.accessToken }), {
      code: 'INVALID_CODE',
      field: 'code',
    });
    const confirmed = await gql<{ confirmTotpEnrollment: { codes: string[] } }>(
      CONFIRM_TOTP,
      { code: totpCode(secret, clock.now()) },
      { token: user.accessToken },
    );
    const codes = confirmed.data?.confirmTotpEnrollment.codes ?? [];
    expect(codes).toHaveLength(10);
    for (const code of codes) expect(code).toMatch(ALPHABET);
    expect(new Set(codes).size).toBe(10);
    expect(await status(user.accessToken)).toMatchObject({ mfaEnabled: true, mfaMethods: ['TOTP', 'RECOVERY_CODE'] });
    // A working authenticator is not replaced without a code.
    expectError(await gql(START_TOTP, {}, { token: user.accessToken }), { code: 'BAD_USER_INPUT' });
    expectError(await gql(CONFIRM_TOTP, { code: '123456' }, { token: user.accessToken }), { code: 'BAD_USER_INPUT' });
  });

  it('replaces an unconfirmed enrolment: the first secret no longer confirms', async () => {
    const user = await registerUser(t.gql);
    const first = (await gql(START_TOTP, {}, { token: user.accessToken })).data?.startTotpEnrollment.secret;
    const second = (await gql(START_TOTP, {}, { token: user.accessToken })).data?.startTotpEnrollment.secret;
    expect(second).not.toBe(first);
    expectError(await gql(CONFIRM_TOTP, { code: totpCode(first, clock.now()) }, { token: user.accessToken }), {
      code: 'INVALID_CODE',
      field: 'code',
    });
    expect(
      (await gql(CONFIRM_TOTP, { code: totpCode(second, clock.now()) }, { token: user.accessToken })).errors,
    ).toBeUndefined();
  });

  it('accepts one step of drift either way and refuses two', async () => {
    const user = await registerUser(t.gql);
    const { secret } = await enrollTotp(gql, user.accessToken, clock.now());
    nextStep(5);
    expect((await regenerate(user.accessToken, totpCode(secret, clock.now(), 1))).errors).toBeUndefined();
    nextStep(3);
    expect((await regenerate(user.accessToken, totpCode(secret, clock.now(), -1))).errors).toBeUndefined();
    nextStep(5);
    expect(errorCode(await regenerate(user.accessToken, totpCode(secret, clock.now(), -2)))).toBe('INVALID_CODE');
    expect(errorCode(await regenerate(user.accessToken, totpCode(secret, clock.now(), 2)))).toBe('INVALID_CODE');
    expect((await regenerate(user.accessToken, totpCode(secret, clock.now()))).errors).toBeUndefined();
  });

  it('refuses a replayed code, and a code of a step before the last one used', async () => {
    const user = await registerUser(t.gql);
    const { secret } = await enrollTotp(gql, user.accessToken, clock.now());
    // The confirming code's step is spent too.
    expect(errorCode(await regenerate(user.accessToken, totpCode(secret, clock.now())))).toBe('INVALID_CODE');
    nextStep(2);
    const code = totpCode(secret, clock.now());
    expect((await regenerate(user.accessToken, code)).errors).toBeUndefined();
    expectError(await regenerate(user.accessToken, code), { code: 'INVALID_CODE', field: 'code' });
    // Still within the drift window, but earlier than the step just used.
    expect(errorCode(await regenerate(user.accessToken, totpCode(secret, clock.now(), -1)))).toBe('INVALID_CODE');
  });

  it('accepts one code once when 30 submissions of it arrive at once', async () => {
    const user = await registerUser(t.gql);
    const { secret } = await enrollTotp(gql, user.accessToken, clock.now());
    nextStep(2);
    const code = totpCode(secret, clock.now());
    const answers = await Promise.all(Array.from({ length: 30 }, () => regenerate(user.accessToken, code)));
    const outcomes = answers.map((answer) => errorCode(answer) ?? 'OK');
    expect(outcomes.filter((outcome) => outcome === 'OK')).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome === 'INVALID_CODE')).toHaveLength(29);
  });

  it('regenerates recovery codes as a set, and disables TOTP with a recovery code once', async () => {
    const user = await registerUser(t.gql);
    const { secret, codes: old } = await enrollTotp(gql, user.accessToken, clock.now());
    nextStep();
    const fresh = (await regenerate(user.accessToken, totpCode(secret, clock.now()))).data?.regenerateRecoveryCodes
      .codes as string[];
    expect(fresh).toHaveLength(10);
    expect(fresh.filter((code) => old.includes(code))).toEqual([]);
    // An old code is worth nothing now.
    expectError(await gql(DISABLE_TOTP, { code: old[0] }, { token: user.accessToken }), {
      code: 'INVALID_CODE',
      field: 'code',
    });
    // A new one turns TOTP off (typed in lower case with a dash: people type them), and with no passkey left the
    // recovery codes go too.
    const typed = `${fresh[0]?.slice(0, 5)}-${fresh[0]?.slice(5)}`.toLowerCase();
    const disabled = await gql(DISABLE_TOTP, { code: typed }, { token: user.accessToken });
    expect(disabled.data?.disableTotp).toEqual({ id: user.user.id, mfaEnabled: false, mfaMethods: [] });
    const em = t.app.orm.em.fork() as Em;
    expect(await em.count(RecoveryCode, { user: user.user.id })).toBe(0);
    expect(await em.count(MfaTotp, { user: user.user.id })).toBe(0);
    // Off means off: a TOTP code no longer disables anything.
    expectError(await gql(DISABLE_TOTP, { code: totpCode(secret, clock.now()) }, { token: user.accessToken }), {
      code: 'BAD_USER_INPUT',
    });
  });

  it('disables TOTP with a current TOTP code', async () => {
    const user = await registerUser(t.gql);
    const { secret } = await enrollTotp(gql, user.accessToken, clock.now());
    expectError(await gql(DISABLE_TOTP, { code: '000000' }, { token: user.accessToken }), {
      code: 'INVALID_CODE',
      field: 'code',
    });
    nextStep();
    const disabled = await gql(DISABLE_TOTP, { code: totpCode(secret, clock.now()) }, { token: user.accessToken });
    expect(disabled.data?.disableTotp).toEqual({ id: user.user.id, mfaEnabled: false, mfaMethods: [] });
  });

  it('keeps the secret encrypted at rest and recovery codes hashed, and never shows them again (myData)', async () => {
    const user = await registerUser(t.gql);
    const { secret, codes } = await enrollTotp(gql, user.accessToken, clock.now());
    const em = t.app.orm.em.fork() as Em;
    const row = await em.findOneOrFail(MfaTotp, { user: user.user.id });
    const stored = row.secretEncrypted;
    expect(stored).not.toContain(secret);
    expect(Buffer.from(stored, 'base64url').toString('latin1')).not.toContain(secret);
    expect(Buffer.from(stored, 'base64url').length).toBe(12 + secret.length + 16);
    const hashes = (await em.find(RecoveryCode, { user: user.user.id })).map((code) => code.codeHash);
    expect(hashes).toHaveLength(10);
    for (const hash of hashes) {
      expect(hash).toMatch(/^[0-9a-f]{64}$/);
      for (const code of codes) expect(hash).not.toContain(code);
    }
    const exported = (await gql<{ myData: Record<string, any> }>('{ myData }', {}, { token: user.accessToken })).data
      ?.myData;
    // What the holder has is in the export: TOTP on since when, and each recovery code's state (not the code).
    expect(exported?.secondFactor).toEqual({
      totp: { confirmedAt: new Date(clock.now()).toISOString(), createdAt: new Date(clock.now()).toISOString() },
      recoveryCodes: Array.from({ length: 10 }, () => ({
        createdAt: new Date(clock.now()).toISOString(),
        usedAt: null,
      })),
      passkeys: [],
    });
    const data = JSON.stringify(exported);
    expect(data).toContain(user.user.id);
    for (const leak of [secret, stored, ...codes, ...hashes]) expect(data).not.toContain(leak);
    // No field gives the secret back.
    expectError(await gql(START_TOTP, {}, { token: user.accessToken }), { code: 'BAD_USER_INPUT' });
  });

  it("revokes the user's other sessions with MFA_CHANGED, keeping the caller's", async () => {
    const user = await registerUser(t.gql);
    const other = await signIn(t.gql, user.user.email, user.password);
    const feed = subscribe<{ sessionRevoked: { sessionId: string; reason: string } }>(
      t.url,
      'subscription { sessionRevoked { sessionId reason } }',
      other.accessToken,
    );
    try {
      // The subscription is registered before the change.
      await new Promise((resolve) => setTimeout(resolve, 200));
      await enrollTotp(gql, user.accessToken, clock.now());
      expect((await feed.next(1)).sessionRevoked).toEqual({ sessionId: other.session.id, reason: 'MFA_CHANGED' });
      expect(await feed.closed).toBe(4403);
    } finally {
      await feed.dispose();
    }
    expectUnauthenticated(await me(t.gql, other.accessToken), 'SESSION_REVOKED');
    expect((await me(t.gql, user.accessToken)).data?.me).toEqual({ id: user.user.id });
  });

  it('lets an admin reset a user: TOTP and recovery codes gone, every session of the user revoked', async () => {
    const admin = await signInAsAdmin(t);
    const user = await registerUser(t.gql);
    await enrollTotp(gql, user.accessToken, clock.now());
    const reset = `mutation($id: ID!) { resetUserMfa(userId: $id) { id mfaEnabled mfaMethods } }`;
    expectError(await gql(reset, { id: user.user.id }, { token: user.accessToken }), { code: 'FORBIDDEN' });
    expectUnauthenticated(await gql(reset, { id: user.user.id }), 'AUTHENTICATION_REQUIRED');
    expectError(await gql(reset, { id: '00000000-0000-4000-8000-000000000000' }, { token: admin.accessToken }), {
      code: 'NOT_FOUND',
    });
    const answer = await gql(reset, { id: user.user.id }, { token: admin.accessToken });
    expect(answer.data?.resetUserMfa).toEqual({ id: user.user.id, mfaEnabled: false, mfaMethods: [] });
    expectUnauthenticated(await me(t.gql, user.accessToken), 'SESSION_REVOKED');
    expect((await me(t.gql, admin.accessToken)).data?.me).toEqual({ id: admin.user.id });
    const em = t.app.orm.em.fork() as Em;
    expect(await em.count(RecoveryCode, { user: user.user.id })).toBe(0);
    // Signing in takes the password alone again.
    expect((await signIn(t.gql, user.user.email, user.password)).accessToken).toBeTruthy();
    // Others see mfaEnabled only with users:read.
    const seen = await gql(
      `query($id: ID!) { user(id: $id) { mfaEnabled mfaMethods } }`,
      { id: user.user.id },
      {
        token: admin.accessToken,
      },
    );
    expect(seen.data?.user).toEqual({ mfaEnabled: false, mfaMethods: [] });
  });
});

describe('the MFA key', () => {
  const productionEnv = {
    NODE_ENV: 'production',
    JWT_PRIVATE_KEY: 'x'.repeat(40),
    JWT_ALG: 'HS256',
    SMTP_URL: 'smtp://mail:25',
    MAIL_FROM: 'no-reply@example.com',
  };
  const noFiles = (path: string): string => {
    throw new Error(`no file ${path}`);
  };
  const problemsOf = (env: Record<string, string>, readFile = noFiles) => {
    try {
      loadConfig(env, readFile);
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    return [];
  };

  it('is read in hex, base64 or base64url', () => {
    const key = Buffer.alloc(32, 7);
    for (const written of [key.toString('hex'), key.toString('base64'), key.toString('base64url')]) {
      expect(problemsOf({ ...productionEnv, MFA_ENCRYPTION_KEY: written })).toEqual([]);
      expect(loadConfig({ ...productionEnv, MFA_ENCRYPTION_KEY: written }, noFiles).mfaEncryptionKey).toEqual(key);
    }
  });

  it('refuses a key that is not 32 bytes, naming the variable and not the value', () => {
    for (const bad of ['short', Buffer.alloc(16).toString('hex'), Buffer.alloc(31).toString('base64')]) {
      const problems = problemsOf({ MFA_ENCRYPTION_KEY: bad });
      expect(problems).toEqual(['MFA_ENCRYPTION_KEY: expected 32 bytes in hex (64 digits) or base64/base64url']);
    }
  });

  it('reads the key from MFA_ENCRYPTION_KEY_FILE (a Docker secret), never from both', () => {
    const key = Buffer.alloc(32, 9);
    const files = (path: string) => {
      if (path !== '/run/secrets/mfa_key') throw new Error(`unexpected file ${path}`);
      return `${key.toString('base64')}\n`;
    };
    expect(loadConfig({ MFA_ENCRYPTION_KEY_FILE: '/run/secrets/mfa_key' }, files).mfaEncryptionKey).toEqual(key);
    expect(problemsOf({ MFA_ENCRYPTION_KEY_FILE: '/nowhere' })).toEqual([
      'MFA_ENCRYPTION_KEY_FILE: cannot read the file "/nowhere"',
    ]);
    expect(
      problemsOf({ MFA_ENCRYPTION_KEY: key.toString('hex'), MFA_ENCRYPTION_KEY_FILE: '/run/secrets/mfa_key' }),
    ).toEqual(['MFA_ENCRYPTION_KEY: set either MFA_ENCRYPTION_KEY or MFA_ENCRYPTION_KEY_FILE, not both']);
  });

  it('is required in production, where the start is refused without it (never generated there)', () => {
    expect(problemsOf(productionEnv)).toEqual([
      'MFA_ENCRYPTION_KEY: required when NODE_ENV=production (32 random bytes in hex or base64, e.g. `openssl rand -base64 32`; it encrypts TOTP secrets)',
    ]);
    const key = Buffer.alloc(32, 7);
    for (const written of [key.toString('hex'), key.toString('base64'), key.toString('base64url')]) {
      expect(problemsOf({ ...productionEnv, MFA_ENCRYPTION_KEY: written })).toEqual([]);
      expect(loadConfig({ ...productionEnv, MFA_ENCRYPTION_KEY: written }, noFiles).mfaEncryptionKey).toEqual(key);
    }
  });

  it('is generated once under DATA_DIR (0600) outside production, and kept across restarts', async () => {
    const clock = new TestClock();
    const first = await startTestApp({ clock, env: { MFA_ENCRYPTION_KEY: '' } });
    const path = join(first.dir, 'dev-mfa-key');
    let closed = false;
    try {
      const user = await registerUser(first.gql);
      const { secret } = await enrollTotp(first.gql, user.accessToken, clock.now());
      expect(statSync(path).mode & 0o777).toBe(0o600);
      await first.app.close();
      closed = true;
      // The same data folder and database: the generated key still opens the stored secret.
      const again = await startTestApp({
        clock,
        databaseUrl: first.databaseUrl,
        env: { MFA_ENCRYPTION_KEY: '', DATA_DIR: first.dir },
      });
      try {
        clock.advance(TOTP_STEP_MS);
        const answer = await again.gql(
          REGENERATE,
          { code: totpCode(secret, clock.now()) },
          { token: user.accessToken },
        );
        expect(answer.errors).toBeUndefined();
      } finally {
        await again.close();
      }
    } finally {
      if (!closed) await first.app.close();
      rmSync(first.dir, { recursive: true, force: true });
    }
  });
});
