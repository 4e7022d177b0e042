// The account lifecycle through the public API, with mail captured by a real SMTP server: email verification,
// password reset, profile, deletion and data export, on every dialect; codes, passwords and tokens never logged.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, type AuditEventType, LinkedAccount, Session, User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import type { SessionRevokedEvent } from '../src/events/revocation-bus.ts';
import { createLogger } from '../src/log.ts';
import { databaseUrl, dialects, startTestApp, type TestApp } from './support/app.ts';
import { TestClock } from './support/clock.ts';
import { ed25519Pem, expectError, expectUnauthenticated } from './support/expect.ts';
import {
  errorCode,
  extensionsOf,
  type Gql,
  loginUser,
  me,
  type Payload,
  refreshToken,
  registerUser,
  signIn,
  uniqueEmail,
} from './support/graphql.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';
import { type CapturedMail, type SmtpCapture, startSmtpServer } from './support/smtp.ts';
import { eventually } from './support/subscriptions.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;

const REQUEST_VERIFICATION = 'mutation { requestEmailVerification }';
const VERIFY = 'mutation($code: String!) { verifyEmail(code: $code) { id email emailVerified } }';
const REQUEST_RESET = 'mutation($email: String!) { requestPasswordReset(email: $email) }';
const RESET = 'mutation($input: ResetPasswordInput!) { resetPassword(input: $input) }';
const UPDATE_PROFILE = 'mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { id displayName } }';
const DELETE = 'mutation($password: String) { deleteAccount(password: $password) }';
const MY_DATA = '{ myData }';

const MAIL_ENV = { MAIL_FROM: 'Acme <no-reply@acme.test>', PRODUCT_NAME: 'Acme', APP_URL: 'https://app.acme.test/' };

/** The code in a mail's text body: the indented line of 6 characters from the code alphabet. */
function codeOf(mail: CapturedMail): string {
  const match = /^ {4}([A-HJ-NP-Z2-9]{6})$/m.exec(mail.text);
  if (!match?.[1]) throw new Error(`no code in mail: ${mail.text}`);
  return match[1];
}

/** A different code of the right shape. */
const wrongCodeFor = (code: string) => (code.startsWith('A') ? `B${code.slice(1)}` : `A${code.slice(1)}`);

const meVerified = (gql: Gql, token: string) =>
  me<{ id: string; emailVerified: boolean }>(gql, token, 'id emailVerified');

async function myData(gql: Gql, token: string): Promise<Record<string, any>> {
  const response = await gql<{ myData: Record<string, any> }>(MY_DATA, {}, { token });
  if (!response.data?.myData) throw new Error(`myData failed: ${JSON.stringify(response.errors)}`);
  return response.data.myData;
}

const auditTypes = async (t: TestApp, userId: string): Promise<AuditEventType[]> =>
  (await t.app.orm.em.fork().find(AuditEvent, { userId }, { orderBy: { id: 'asc' } })).map(
    (e) => e.type as AuditEventType,
  );

/** Links a provider account to the user straight in the database (the OAuth flows have their own tests). */
async function linkAccount(t: TestApp, userId: string, provider: string, at: number) {
  const em = t.app.orm.em.fork() as Em;
  em.create(LinkedAccount, {
    id: randomUUID(),
    user: userId,
    provider,
    providerUserId: `${provider}-${userId.slice(0, 8)}`,
    email: `someone@${provider}.test`,
    linkedAt: new Date(at),
  });
  await em.flush();
}

/** Records what the app's revocation bus carries. */
function recordRevocations(t: TestApp): { events: SessionRevokedEvent[]; stop: () => void } {
  const events: SessionRevokedEvent[] = [];
  const stop = t.app.bus.subscribe((event) => events.push(event));
  return { events, stop };
}

describe.each(dialects())('account lifecycle on %s', (dialect) => {
  const clock = new TestClock();
  let smtp: SmtpCapture;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtpServer();
    t = await startTestApp({ dialect, clock, env: { ...MAIL_ENV, SMTP_URL: smtp.url } });
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  /** Requests a verification code for the user and returns it, as mailed. */
  async function verificationCode(user: Payload): Promise<string> {
    const response = await t.gql(REQUEST_VERIFICATION, {}, { token: user.accessToken });
    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({ requestEmailVerification: true });
    return codeOf(await smtp.waitForMail(user.user.email));
  }

  const verify = (user: Payload, code: string) =>
    t.gql<{ verifyEmail: { id: string; email: string; emailVerified: boolean } }>(
      VERIFY,
      { code },
      { token: user.accessToken },
    );

  async function resetCode(email: string): Promise<string> {
    const response = await t.gql(REQUEST_RESET, { email });
    expect(response.data).toEqual({ requestPasswordReset: true });
    return codeOf(await smtp.waitForMail(email));
  }

  const reset = (email: string, code: string, newPassword: string) =>
    t.gql(RESET, { input: { email, code, newPassword } });

  describe('email verification', () => {
    it('mails a 6-character code from the unambiguous alphabet, in text and HTML, that verifies the email once', async () => {
      const user = await registerUser(t.gql);
      const response = await t.gql(REQUEST_VERIFICATION, {}, { token: user.accessToken });
      expect(response.data).toEqual({ requestEmailVerification: true });
      const mail = await smtp.waitForMail(user.user.email);
      const code = codeOf(mail);
      expect(code).toMatch(/^[ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{6}$/);
      expect(mail.from).toBe('no-reply@acme.test');
      expect(mail.to).toEqual([user.user.email]);
      expect(mail.subject).toBe('Verify your Acme email address');
      expect(mail.subject).not.toContain(code);
      expect(mail.text).toContain(`https://app.acme.test/verify-email?code=${code}`);
      expect(mail.html).toContain(`<strong>${code}</strong>`);
      expect(mail.html).toContain(`href="https://app.acme.test/verify-email?code=${code}"`);

      // Entered by a person: lower case and stray spaces do not matter.
      const verified = await verify(user, `  ${code.toLowerCase()} `);
      expect(verified.errors).toBeUndefined();
      expect(verified.data?.verifyEmail).toEqual({ id: user.user.id, email: user.user.email, emailVerified: true });
      expect((await meVerified(t.gql, user.accessToken)).data?.me?.emailVerified).toBe(true);

      expectError(await verify(user, code), 'INVALID_CODE');
      expect(await auditTypes(t, user.user.id)).toEqual([
        'USER_REGISTERED',
        'EMAIL_VERIFICATION_REQUESTED',
        'EMAIL_VERIFIED',
        'EMAIL_VERIFICATION_FAILED',
      ]);
    });

    it('answers false and sends nothing once the email is verified', async () => {
      const user = await registerUser(t.gql);
      expect((await verify(user, await verificationCode(user))).errors).toBeUndefined();
      const again = await t.gql(REQUEST_VERIFICATION, {}, { token: user.accessToken });
      expect(again.data).toEqual({ requestEmailVerification: false });
      expect(smtp.mailTo(user.user.email)).toHaveLength(1);
    });

    it('refuses a wrong code with INVALID_CODE and still takes the right one afterwards', async () => {
      const user = await registerUser(t.gql);
      const code = await verificationCode(user);
      for (const wrong of [wrongCodeFor(code), '', 'not a code', `${code}X`]) {
        const response = await verify(user, wrong);
        expectError(response, 'INVALID_CODE');
        expect(extensionsOf(response)).toEqual({ code: 'INVALID_CODE', field: 'code' });
      }
      expect((await meVerified(t.gql, user.accessToken)).data?.me?.emailVerified).toBe(false);
      // Four wrong tries: the fifth, right one, still works.
      expect((await verify(user, code)).data?.verifyEmail.emailVerified).toBe(true);
    });

    it('kills the code at the fifth wrong try: a sixth try, even with the right code, is INVALID_CODE', async () => {
      const user = await registerUser(t.gql);
      const code = await verificationCode(user);
      for (let i = 0; i < 5; i++) expectError(await verify(user, wrongCodeFor(code)), 'INVALID_CODE');
      expectError(await verify(user, code), 'INVALID_CODE');
      expect((await meVerified(t.gql, user.accessToken)).data?.me?.emailVerified).toBe(false);
      // A new code starts with a clean slate.
      expect((await verify(user, await verificationCode(user))).data?.verifyEmail.emailVerified).toBe(true);
    });

    it('accepts a code until 5 minutes have passed, and refuses it from then on', async () => {
      const early = await registerUser(t.gql);
      const earlyCode = await verificationCode(early);
      clock.advance(5 * MINUTE - SECOND);
      expect((await verify(early, earlyCode)).data?.verifyEmail.emailVerified).toBe(true);

      const late = await registerUser(t.gql);
      const lateCode = await verificationCode(late);
      clock.advance(5 * MINUTE);
      expectError(await verify(late, lateCode), 'INVALID_CODE');
      expect((await meVerified(t.gql, late.accessToken)).data?.me?.emailVerified).toBe(false);
    });

    it('replaces the earlier code when a new one is requested', async () => {
      const user = await registerUser(t.gql);
      const first = await verificationCode(user);
      const second = await verificationCode(user);
      expectError(await verify(user, first), 'INVALID_CODE');
      expect((await verify(user, second)).data?.verifyEmail.emailVerified).toBe(true);
    });

    it('lets a code work once even when sent five times at once, and not for another account or purpose', async () => {
      const user = await registerUser(t.gql);
      const other = await registerUser(t.gql);
      const code = await verificationCode(user);
      expectError(await verify(other, code), 'INVALID_CODE');
      const resetOfOther = await resetCode(other.user.email);
      expectError(await verify(other, resetOfOther), 'INVALID_CODE');

      const answers = await Promise.all(Array.from({ length: 4 }, () => verify(user, code)));
      expect(answers.filter((a) => a.data?.verifyEmail?.emailVerified === true)).toHaveLength(1);
      expect(answers.filter((a) => errorCode(a) === 'INVALID_CODE')).toHaveLength(3);
    });

    it('answers RATE_LIMITED with retryAfter seconds after 3 requests per account, and mails nothing more', async () => {
      const user = await registerUser(t.gql);
      for (let i = 0; i < 3; i++) await verificationCode(user);
      const limited = await t.gql(REQUEST_VERIFICATION, {}, { token: user.accessToken });
      expectError(limited, 'RATE_LIMITED');
      const retryAfter = extensionsOf(limited)?.retryAfter;
      expect(Number.isInteger(retryAfter)).toBe(true);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(15 * 60);
      // Another account is not affected.
      await verificationCode(await registerUser(t.gql));
      expect(smtp.mailTo(user.user.email)).toHaveLength(3);
    });
  });

  describe('password reset', () => {
    it('resets with the mailed code: new password in, old out, every session revoked at once, email verified', async () => {
      const user = await registerUser(t.gql);
      const other = await signIn(t.gql, user.user.email, user.password);
      const bystander = await registerUser(t.gql);
      const bus = recordRevocations(t);
      const newPassword = 'a brand new secret';

      const code = await resetCode(user.user.email);
      const mail = smtp.mailTo(user.user.email)[0] as CapturedMail;
      expect(mail.subject).toBe('Reset your Acme password');
      expect(mail.text).toContain(
        `https://app.acme.test/reset-password?email=${encodeURIComponent(user.user.email)}&code=${code}`,
      );
      const response = await reset(user.user.email.toUpperCase(), code.toLowerCase(), newPassword);
      bus.stop();
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual({ resetPassword: true });

      for (const session of [user, other]) {
        expectUnauthenticated(await meVerified(t.gql, session.accessToken), 'SESSION_REVOKED');
        expectUnauthenticated(await refreshToken(t.gql, session.refreshToken), 'SESSION_REVOKED');
        const row = await t.app.orm.em.fork().findOneOrFail(Session, { id: session.session.id });
        expect(row.revokedReason).toBe('PASSWORD_RESET');
      }
      expect(bus.events).toHaveLength(1);
      expect(bus.events[0]).toMatchObject({ userId: user.user.id, reason: 'PASSWORD_RESET' });
      expect([...(bus.events[0]?.sessionIds ?? [])].sort()).toEqual([user.session.id, other.session.id].sort());
      expect((await meVerified(t.gql, bystander.accessToken)).data?.me?.id).toBe(bystander.user.id);

      expectError(await loginUser(t.gql, user.user.email, user.password), 'INVALID_CREDENTIALS');
      const relogin = await loginUser(t.gql, user.user.email, newPassword);
      expect(relogin.errors).toBeUndefined();
      expect(relogin.data?.login.user.emailVerified).toBe(true);

      expectError(await reset(user.user.email, code, 'yet another secret'), 'INVALID_CODE');
      expect(await auditTypes(t, user.user.id)).toEqual(
        expect.arrayContaining(['PASSWORD_RESET_REQUESTED', 'PASSWORD_RESET', 'PASSWORD_RESET_FAILED']),
      );
    });

    it('refuses a wrong, expired or replaced code with INVALID_CODE and keeps the password', async () => {
      const user = await registerUser(t.gql);
      const email = user.user.email;
      const first = await resetCode(email);
      const second = await resetCode(email);
      expectError(await reset(email, first, 'a brand new secret'), 'INVALID_CODE');
      expectError(await reset(email, wrongCodeFor(second), 'a brand new secret'), 'INVALID_CODE');
      clock.advance(5 * MINUTE);
      expectError(await reset(email, second, 'a brand new secret'), 'INVALID_CODE');
      expect((await meVerified(t.gql, user.accessToken)).data?.me?.id).toBe(user.user.id);
      expect((await loginUser(t.gql, email, user.password)).errors).toBeUndefined();
    });

    it('kills a reset code at the fifth wrong try', async () => {
      const user = await registerUser(t.gql);
      const code = await resetCode(user.user.email);
      for (let i = 0; i < 5; i++) {
        expectError(await reset(user.user.email, wrongCodeFor(code), 'a brand new secret'), 'INVALID_CODE');
      }
      expectError(await reset(user.user.email, code, 'a brand new secret'), 'INVALID_CODE');
      expect((await loginUser(t.gql, user.user.email, user.password)).errors).toBeUndefined();
    });

    it('refuses a new password under 8 bytes on newPassword without spending the code', async () => {
      const user = await registerUser(t.gql);
      const code = await resetCode(user.user.email);
      const short = await reset(user.user.email, code, 'short');
      expectError(short, 'BAD_USER_INPUT');
      expect(extensionsOf(short)?.field).toBe('newPassword');
      expect((await reset(user.user.email, code, 'long enough now')).data).toEqual({ resetPassword: true });
    });

    it('answers true for an unknown email and mails nothing; a reset for it is INVALID_CODE', async () => {
      const unknown = uniqueEmail('nobody');
      const response = await t.gql(REQUEST_RESET, { email: unknown });
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual({ requestPasswordReset: true });
      // A known address asked afterwards gets its mail: anything for the unknown one would have come by now.
      await resetCode((await registerUser(t.gql)).user.email);
      expect(smtp.mailTo(unknown)).toEqual([]);
      expectError(await reset(unknown, 'ABCDEF', 'a brand new secret'), 'INVALID_CODE');
    });

    it('over its limit still answers true but quietly sends nothing', async () => {
      const user = await registerUser(t.gql);
      for (let i = 0; i < 3; i++) await resetCode(user.user.email);
      const fourth = await t.gql(REQUEST_RESET, { email: user.user.email });
      expect(fourth.errors).toBeUndefined();
      expect(fourth.data).toEqual({ requestPasswordReset: true });
      await resetCode((await registerUser(t.gql)).user.email);
      expect(smtp.mailTo(user.user.email)).toHaveLength(3);
      const requests = await t.app.orm.em
        .fork()
        .find(AuditEvent, { userId: user.user.id, type: 'PASSWORD_RESET_REQUESTED' }, { orderBy: { id: 'asc' } });
      expect(requests.map((e) => JSON.parse(e.detail ?? '{}').outcome)).toEqual([
        'SENT',
        'SENT',
        'SENT',
        'RATE_LIMITED',
      ]);
    });

    it('answers a known email without waiting for the mail server, as it answers an unknown one', async () => {
      const user = await registerUser(t.gql);
      const nobody = uniqueEmail('nobody');
      // The mail server takes the connection and never greets: a request that waited for it would not answer.
      const release = smtp.holdGreetings();
      try {
        const known = await t.gql(REQUEST_RESET, { email: user.user.email });
        const unknown = await t.gql(REQUEST_RESET, { email: nobody });
        expect([known.data, known.errors]).toEqual([{ requestPasswordReset: true }, undefined]);
        expect([unknown.data, unknown.errors]).toEqual([{ requestPasswordReset: true }, undefined]);
        // Both answered while the known email's mail was still waiting for the server's greeting.
        await eventually(() => smtp.waitingForGreeting() === 1);
        expect(smtp.mailTo(user.user.email)).toEqual([]);
      } finally {
        release();
      }
      // Sent once the server greets: a code that resets the password.
      const code = codeOf(await smtp.waitForMail(user.user.email));
      expect((await reset(user.user.email, code, 'after the hold!')).errors).toBeUndefined();
      expect(smtp.mailTo(nobody)).toEqual([]);
    });
  });

  describe('updateProfile', () => {
    const update = (user: Payload, input: Record<string, unknown>) =>
      t.gql<{ updateProfile: { id: string; displayName: string | null } }>(
        UPDATE_PROFILE,
        { input },
        { token: user.accessToken },
      );

    it('sets, keeps and clears the display name', async () => {
      const user = await registerUser(t.gql, { displayName: 'Ada' });
      expect((await update(user, { displayName: '  Ada Lovelace ' })).data?.updateProfile).toEqual({
        id: user.user.id,
        displayName: 'Ada Lovelace',
      });
      expect((await update(user, {})).data?.updateProfile.displayName).toBe('Ada Lovelace');
      expect((await update(user, { displayName: '' })).data?.updateProfile.displayName).toBeNull();
      expect((await update(user, { displayName: 'Grace' })).data?.updateProfile.displayName).toBe('Grace');
      expect((await update(user, { displayName: null })).data?.updateProfile.displayName).toBeNull();
      const hundred = '🦊'.repeat(100);
      expect((await update(user, { displayName: hundred })).data?.updateProfile.displayName).toBe(hundred);
      const stored = await t.app.orm.em.fork().findOneOrFail(User, { id: user.user.id });
      expect(stored.displayName).toBe(hundred);
      expect(await auditTypes(t, user.user.id)).toEqual([
        'USER_REGISTERED',
        'PROFILE_UPDATED',
        'PROFILE_UPDATED',
        'PROFILE_UPDATED',
        'PROFILE_UPDATED',
        'PROFILE_UPDATED',
      ]);
    });

    it('refuses a display name over 100 characters with BAD_USER_INPUT on displayName', async () => {
      const user = await registerUser(t.gql, { displayName: 'Ada' });
      for (const displayName of ['x'.repeat(101), 'bell\u0007']) {
        const response = await update(user, { displayName });
        expectError(response, 'BAD_USER_INPUT');
        expect(extensionsOf(response)?.field).toBe('displayName');
      }
      expect((await t.app.orm.em.fork().findOneOrFail(User, { id: user.user.id })).displayName).toBe('Ada');
    });
  });

  describe('deleteAccount', () => {
    it('requires the password: BAD_USER_INPUT without it, INVALID_CREDENTIALS when wrong; nothing is deleted', async () => {
      const user = await registerUser(t.gql);
      for (const password of [undefined, null, '']) {
        const response = await t.gql(DELETE, password === undefined ? {} : { password }, { token: user.accessToken });
        expectError(response, 'BAD_USER_INPUT');
        expect(extensionsOf(response)?.field).toBe('password');
      }
      for (const password of ['not the password', `${user.password}${'x'.repeat(80)}`]) {
        expectError(await t.gql(DELETE, { password }, { token: user.accessToken }), 'INVALID_CREDENTIALS');
      }
      expect((await meVerified(t.gql, user.accessToken)).data?.me?.id).toBe(user.user.id);
      expect((await loginUser(t.gql, user.user.email, user.password)).errors).toBeUndefined();
    });

    it('deletes the user, sessions and codes in one go, revokes the sessions at once and anonymises the audit trail', async () => {
      const user = await registerUser(t.gql, { displayName: 'Ada' });
      const other = await signIn(t.gql, user.user.email, user.password);
      const bystander = await registerUser(t.gql);
      await linkAccount(t, user.user.id, 'github', clock.now());
      await linkAccount(t, bystander.user.id, 'github', clock.now());
      await verificationCode(user);
      await resetCode(user.user.email);
      const sessionIds = [user.session.id, other.session.id];
      const bus = recordRevocations(t);

      const response = await t.gql(DELETE, { password: user.password }, { token: user.accessToken });
      bus.stop();
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual({ deleteAccount: true });

      // Tokens fail at once; the account cannot sign in.
      for (const session of [user, other]) {
        expectUnauthenticated(await meVerified(t.gql, session.accessToken), 'SESSION_REVOKED');
        expectUnauthenticated(await refreshToken(t.gql, session.refreshToken), 'INVALID_REFRESH_TOKEN');
      }
      expectError(await loginUser(t.gql, user.user.email, user.password), 'INVALID_CREDENTIALS');
      expect(bus.events).toHaveLength(1);
      expect(bus.events[0]).toMatchObject({ userId: user.user.id, reason: 'ACCOUNT_DELETED' });
      expect([...(bus.events[0]?.sessionIds ?? [])].sort()).toEqual([...sessionIds].sort());

      // Not one row names the user any more.
      const em = t.app.orm.em.fork() as Em;
      expect(await em.count(User, { id: user.user.id })).toBe(0);
      expect(await em.count(User, { email: user.user.email })).toBe(0);
      expect(await em.count(Session, { user: user.user.id })).toBe(0);
      expect(await em.count(Session, { id: { $in: sessionIds } })).toBe(0);
      expect(await em.count(LinkedAccount, { user: user.user.id })).toBe(0);
      expect(await em.count(LinkedAccount, { user: bystander.user.id })).toBe(1);
      expect(await em.count(AuditEvent, { userId: user.user.id })).toBe(0);
      // Straight from the tables, past the ORM.
      for (const [table, column] of [
        ['users', 'id'],
        ['sessions', 'user_id'],
        ['linked_accounts', 'user_id'],
        ['audit_events', 'user_id'],
      ]) {
        const rows = await em
          .getConnection()
          .execute<{ n: number }[]>(`select count(*) as n from ${table} where ${column} = ?`, [user.user.id]);
        expect(Number(rows[0]?.n), table).toBe(0);
      }

      // The trail keeps what happened and when, without who.
      const trail = await em.find(AuditEvent, { sessionId: { $in: sessionIds } });
      expect(trail.length).toBeGreaterThanOrEqual(4);
      for (const event of trail) expect([event.userId, event.ipAddress, event.userAgent]).toEqual([null, null, null]);
      expect(trail.filter((e) => e.type === 'SESSION_REVOKED')).toHaveLength(2);
      const deleted = await em.find(AuditEvent, { type: 'ACCOUNT_DELETED' }, { orderBy: { id: 'desc' }, limit: 1 });
      expect(deleted[0]).toMatchObject({ userId: null, sessionId: null, ipAddress: null, userAgent: null });
      expect(JSON.parse(deleted[0]?.detail ?? '{}')).toEqual({ sessionsRevoked: 2 });

      // Pending codes are gone from the store.
      expect(await t.app.store.get(`code:email-verification:${user.user.id}`)).toBeNull();
      expect(await t.app.store.get(`code:password-reset:${user.user.id}`)).toBeNull();

      // Others are untouched, and the address is free again.
      expect((await meVerified(t.gql, bystander.accessToken)).data?.me?.id).toBe(bystander.user.id);
      const again = await registerUser(t.gql, { email: user.user.email });
      expect(again.user.id).not.toBe(user.user.id);
    });

    it('deletes an account without a password (OAuth only) without asking for one', async () => {
      const em = t.app.orm.em.fork() as Em;
      const now = new Date(clock.now());
      const user = em.create(User, {
        id: randomUUID(),
        email: uniqueEmail('oauth'),
        passwordHash: null,
        emailVerified: true,
        displayName: null,
        roles: 'USER',
        createdAt: now,
        updatedAt: now,
      });
      await em.flush();
      // A session opens inside a transaction (it reads the account under its row's lock).
      const opened = await em.transactional((tx) =>
        t.app.services.sessions.open(tx as Em, user, { ipAddress: null, userAgent: null }, 'BODY', 'existing'),
      );
      const tokens = await t.app.services.sessions.issue(user, opened.row, opened.refreshToken);
      const response = await t.gql(DELETE, {}, { token: tokens.accessToken });
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual({ deleteAccount: true });
      expect(await t.app.orm.em.fork().count(User, { id: user.id })).toBe(0);
      expectUnauthenticated(await meVerified(t.gql, tokens.accessToken), 'SESSION_REVOKED');
    });
  });

  describe('myData', () => {
    it('returns what the account holds (user, every session, audit events) and no secret', async () => {
      const t0 = clock.now();
      const user = await registerUser(t.gql, { displayName: 'Ada' });
      clock.advance(SECOND);
      const other = await signIn(t.gql, user.user.email, user.password);
      await t.gql('mutation { logout }', {}, { token: other.accessToken });
      await linkAccount(t, user.user.id, 'google', t0);
      const stranger = await registerUser(t.gql);
      await linkAccount(t, stranger.user.id, 'google', t0);

      const data = await myData(t.gql, user.accessToken);
      expect(data.user).toEqual({
        id: user.user.id,
        email: user.user.email,
        emailVerified: false,
        displayName: 'Ada',
        roles: ['USER'],
        hasPassword: true,
        createdAt: new Date(t0).toISOString(),
        updatedAt: new Date(t0).toISOString(),
      });
      expect(data.sessions).toHaveLength(2);
      expect(data.sessions[0]).toEqual({
        id: user.session.id,
        createdAt: new Date(t0).toISOString(),
        lastUsedAt: new Date(t0).toISOString(),
        expiresAt: user.session.expiresAt,
        userAgent: 'node',
        ipAddress: '127.0.0.1',
        revokedAt: null,
        revokedReason: null,
      });
      expect(data.sessions[1]).toMatchObject({ id: other.session.id, revokedReason: 'LOGOUT' });
      expect(data.linkedAccounts).toEqual([
        {
          provider: 'google',
          providerUserId: `google-${user.user.id.slice(0, 8)}`,
          email: 'someone@google.test',
          linkedAt: new Date(t0).toISOString(),
        },
      ]);
      expect(data.auditEvents.map((e: { type: string }) => e.type)).toEqual([
        'USER_REGISTERED',
        'LOGIN_SUCCEEDED',
        'SESSION_REVOKED',
      ]);
      expect(data.auditEvents[2]).toMatchObject({ sessionId: other.session.id, detail: { reason: 'LOGOUT' } });

      const json = JSON.stringify(data);
      const rows = await t.app.orm.em.fork().find(Session, { user: user.user.id });
      const user_ = await t.app.orm.em.fork().findOneOrFail(User, { id: user.user.id });
      const secrets = [
        user.password,
        user_.passwordHash as string,
        user.accessToken,
        user.refreshToken,
        user.refreshToken.split('.').at(-1) as string,
        other.refreshToken,
        ...rows.map((r) => r.refreshTokenHash),
      ];
      for (const secret of secrets) expect(json).not.toContain(secret);
      expect(json).not.toMatch(/hash|\$2[aby]\$|secret|tagKey/i);
      expect(json).not.toContain(stranger.user.id.slice(0, 8));
      expect(json).not.toContain(stranger.session.id);

      // The export itself is on record.
      expect((await auditTypes(t, user.user.id)).at(-1)).toBe('DATA_EXPORTED');
    });
  });

  describe('anonymous callers', () => {
    it('get UNAUTHENTICATED from requestEmailVerification, verifyEmail, updateProfile, deleteAccount and myData', async () => {
      const operations: [string, Record<string, unknown>][] = [
        [REQUEST_VERIFICATION, {}],
        [VERIFY, { code: 'ABCDEF' }],
        [UPDATE_PROFILE, { input: { displayName: 'Mallory' } }],
        [DELETE, { password: 'whatever it is' }],
        [MY_DATA, {}],
      ];
      for (const [query, variables] of operations) {
        expectUnauthenticated(await t.gql(query, variables), 'AUTHENTICATION_REQUIRED');
      }
    });
  });
});

/** A pino logger at trace level writing into memory, so a test can read everything the app logged. */
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

describe('secrets in logs', () => {
  let smtp: SmtpCapture;
  const logs = capturedLogger();
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtpServer();
    t = await startTestApp({ logger: logs.logger, env: { ...MAIL_ENV, SMTP_URL: smtp.url, LOG_LEVEL: 'trace' } });
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('logs no code, password or token at any step of the lifecycle', async () => {
    const user = await registerUser(t.gql);
    const secrets = [user.password, user.accessToken, user.refreshToken];

    expect((await t.gql(REQUEST_VERIFICATION, {}, { token: user.accessToken })).data).toBeTruthy();
    const verification = codeOf(await smtp.waitForMail(user.user.email));
    await t.gql(VERIFY, { code: wrongCodeFor(verification) }, { token: user.accessToken });
    expect((await t.gql(VERIFY, { code: verification }, { token: user.accessToken })).errors).toBeUndefined();

    await t.gql(REQUEST_RESET, { email: user.user.email });
    const resetCode = codeOf(await smtp.waitForMail(user.user.email));
    const newPassword = 'the second secret';
    await t.gql(RESET, { input: { email: user.user.email, code: wrongCodeFor(resetCode), newPassword } });
    const reset = await t.gql(RESET, { input: { email: user.user.email, code: resetCode, newPassword } });
    expect(reset.errors).toBeUndefined();

    const again = await signIn(t.gql, user.user.email, newPassword);
    await myData(t.gql, again.accessToken);
    expectError(
      await t.gql(DELETE, { password: 'a wrong password' }, { token: again.accessToken }),
      'INVALID_CREDENTIALS',
    );
    expect((await t.gql(DELETE, { password: newPassword }, { token: again.accessToken })).errors).toBeUndefined();
    secrets.push(verification, resetCode, newPassword, 'a wrong password', again.accessToken, again.refreshToken);

    const text = logs.text();
    expect(text.length).toBeGreaterThan(0);
    for (const secret of secrets) expect(text).not.toContain(secret);
  });
});

describe('without SMTP_URL (development)', () => {
  const logs = capturedLogger();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ logger: logs.logger, env: { ...MAIL_ENV, LOG_LEVEL: 'trace' } });
  });
  afterAll(() => t?.close());

  it('writes the mail to DATA_DIR/mail and logs a notice naming file, recipient and subject, never the code', async () => {
    const user = await registerUser(t.gql);
    const response = await t.gql(REQUEST_VERIFICATION, {}, { token: user.accessToken });
    expect(response.data).toEqual({ requestEmailVerification: true });

    const files = readdirSync(join(t.dir, 'mail'));
    expect(files).toHaveLength(1);
    const file = join(t.dir, 'mail', files[0] as string);
    const parsed = await simpleParser(readFileSync(file));
    expect(parsed.subject).toBe('Verify your Acme email address');
    const code = codeOf({ text: parsed.text ?? '' } as CapturedMail);

    const notice = logs
      .text()
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
      .find((entry) => entry.mail?.file === file);
    expect(notice).toMatchObject({
      mail: { file, to: user.user.email, subject: 'Verify your Acme email address' },
      msg: 'SMTP_URL is not set: mail NOT sent, written to the development outbox instead',
    });
    expect(logs.text()).not.toContain(code);

    expect((await t.gql(VERIFY, { code }, { token: user.accessToken })).data?.verifyEmail.emailVerified).toBe(true);
  });
});

describe.skipIf(!serviceAvailable('redis-server'))('two instances sharing Redis', () => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-account-redis-'));
  let redis: RunningService;
  let smtp: SmtpCapture;
  let one: TestApp;
  let two: TestApp;
  beforeAll(async () => {
    redis = await startRedis();
    smtp = await startSmtpServer();
    const key = ed25519Pem();
    const env = { ...MAIL_ENV, SMTP_URL: smtp.url, REDIS_URL: redis.url, JWT_PRIVATE_KEY: key };
    const url = await databaseUrl(dialects().includes('mysql') ? 'mysql' : 'sqlite', dir);
    one = await startTestApp({ databaseUrl: url, env });
    two = await startTestApp({ databaseUrl: url, env, migrate: false });
  });
  afterAll(async () => {
    await one?.close();
    await two?.close();
    await smtp?.close();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps codes in Redis, hashed: a code mailed by one instance is spent on the other, once', async () => {
    const user = await registerUser(one.gql);
    expect((await one.gql(REQUEST_VERIFICATION, {}, { token: user.accessToken })).data).toEqual({
      requestEmailVerification: true,
    });
    const code = codeOf(await smtp.waitForMail(user.user.email));
    const client = new Redis(redis.url);
    const stored = await client
      .get(`auth:kv:code:email-verification:${user.user.id}`)
      .finally(() => client.disconnect());
    expect(stored).toBeTypeOf('string');
    expect(stored).not.toContain(code);

    const verified = await two.gql(VERIFY, { code }, { token: user.accessToken });
    expect(verified.data?.verifyEmail.emailVerified).toBe(true);
    expectError(await one.gql(VERIFY, { code }, { token: user.accessToken }), 'INVALID_CODE');
  });

  it('counts code requests of one account across instances', async () => {
    const user = await registerUser(one.gql);
    for (const app of [one, two, one]) {
      expect((await app.gql(REQUEST_VERIFICATION, {}, { token: user.accessToken })).data).toEqual({
        requestEmailVerification: true,
      });
    }
    expectError(await two.gql(REQUEST_VERIFICATION, {}, { token: user.accessToken }), 'RATE_LIMITED');
  });
});

describe('a deleted account after a restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-account-restart-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("still refuses the deleted account's access tokens on an instance started after the deletion", async () => {
    const key = ed25519Pem();
    const url = await databaseUrl('sqlite', dir);
    const before = await startTestApp({ databaseUrl: url, env: { ...MAIL_ENV, JWT_PRIVATE_KEY: key } });
    const user = await registerUser(before.gql);
    expect((await before.gql(DELETE, { password: user.password }, { token: user.accessToken })).data).toEqual({
      deleteAccount: true,
    });
    await before.app.close();
    // The sessions rows are gone with the account; the new instance must still know they were revoked.
    const after = await startTestApp({ databaseUrl: url, env: { ...MAIL_ENV, JWT_PRIVATE_KEY: key } });
    try {
      const me = await after.gql('{ me { id } }', {}, { token: user.accessToken });
      expect(me.errors?.[0]?.extensions).toEqual({ code: 'UNAUTHENTICATED', reason: 'SESSION_REVOKED' });
    } finally {
      await after.close();
    }
  });
});
