// Sessions through the public API: refresh rotation and reuse detection, expiry, listing, revocation,
// password change, and revocations surviving a restart.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, type AuditEventType, Session } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import type { AuthError } from '../src/errors.ts';
import { databaseUrl, dialects, startTestApp, type TestApp } from './support/app.ts';
import { TestClock } from './support/clock.ts';
import { ed25519Pem, expectUnauthenticated } from './support/expect.ts';
import {
  errorCode,
  extensionsOf,
  type Gql,
  loginUser,
  me,
  PAYLOAD,
  type Payload,
  REVOKE_SESSION,
  refreshToken,
  registerUser,
  revokeSession,
  signIn,
  uniqueEmail,
} from './support/graphql.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const SESSION_FIELDS = 'id current userAgent ipAddress createdAt lastUsedAt expiresAt';

interface SessionView {
  id: string;
  current: boolean;
  userAgent: string | null;
  ipAddress: string | null;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Expects the access token to be accepted, for `userId`. */
async function expectAccepted(gql: Gql, accessToken: string, userId: string) {
  const response = await me(gql, accessToken);
  expect(response.errors).toBeUndefined();
  expect(response.data?.me).toEqual({ id: userId });
}

async function expectRevokedAccess(gql: Gql, accessToken: string) {
  expectUnauthenticated(await me(gql, accessToken), 'SESSION_REVOKED');
}

async function mySessions(gql: Gql, accessToken: string): Promise<SessionView[]> {
  const response = await gql<{ me: { sessions: SessionView[] } }>(
    `{ me { sessions { ${SESSION_FIELDS} } } }`,
    {},
    { token: accessToken },
  );
  if (!response.data?.me) throw new Error(`me { sessions } failed: ${JSON.stringify(response.errors)}`);
  return response.data.me.sessions;
}

async function registerWith(gql: Gql, userAgent: string): Promise<Payload & { password: string }> {
  const password = 'correct horse battery';
  const response = await gql<{ register: Payload }>(
    `mutation($input: RegisterInput!) { register(input: $input) { ${PAYLOAD} } }`,
    { input: { email: uniqueEmail('sessions'), password } },
    { headers: { 'user-agent': userAgent } },
  );
  if (!response.data?.register) throw new Error(`register failed: ${JSON.stringify(response.errors)}`);
  return { ...response.data.register, password };
}

/** Refreshes and fails the test unless the refresh succeeds. */
async function rotate(gql: Gql, token: string): Promise<Payload> {
  const response = await refreshToken(gql, token);
  if (!response.data?.refresh) throw new Error(`refresh failed: ${JSON.stringify(response.errors)}`);
  return response.data.refresh;
}

function refreshWith(gql: Gql, token: string, userAgent: string) {
  return gql<{ refresh: Payload }>(
    `mutation($t: String!) { refresh(refreshToken: $t) { ${PAYLOAD} } }`,
    { t: token },
    { headers: { 'user-agent': userAgent } },
  );
}

const auditCount = (t: TestApp, type: AuditEventType, sessionId: string) =>
  t.app.orm.em.fork().count(AuditEvent, { type, sessionId });

const sessionRow = (t: TestApp, id: string) =>
  t.app.orm.em.fork().findOneOrFail(Session, { id }, { disableIdentityMap: true });

describe.each(dialects())('sessions on %s', (dialect) => {
  const clock = new TestClock();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ dialect, clock });
  });
  afterAll(() => t?.close());

  describe('refresh', () => {
    it('rotates the refresh token within the same session and issues an access token that works', async () => {
      const user = await registerUser(t.gql);
      clock.advance(SECOND);
      const next = await rotate(t.gql, user.refreshToken);
      expect(next.refreshToken).not.toBe(user.refreshToken);
      expect(next.refreshToken.startsWith(`${user.session.id}.`)).toBe(true);
      expect(next.accessToken).not.toBe(user.accessToken);
      expect(next.tokenType).toBe('Bearer');
      expect(next.session).toMatchObject({ id: user.session.id, current: true, lastUsedAt: iso(clock.now()) });
      expect(next.refreshTokenExpiresAt).toBe(iso(clock.now() + 30 * DAY));
      expect(next.user.id).toBe(user.user.id);
      await expectAccepted(t.gql, next.accessToken, user.user.id);
    });

    it('answers REFRESH_TOKEN_ROTATED to a spent token within the grace period and keeps the session', async () => {
      const user = await registerUser(t.gql);
      const next = await rotate(t.gql, user.refreshToken);
      clock.advance(10 * SECOND);
      expectUnauthenticated(await refreshToken(t.gql, user.refreshToken), 'REFRESH_TOKEN_ROTATED');
      await expectAccepted(t.gql, next.accessToken, user.user.id);
      const after = await rotate(t.gql, next.refreshToken);
      expect(after.session.id).toBe(user.session.id);
      expect(await auditCount(t, 'REFRESH_TOKEN_REUSE_DETECTED', user.session.id)).toBe(0);
    });

    it('lets exactly one of 10 concurrent refreshes with one token win, and the session lives on', async () => {
      const N = 10;
      const ROUNDS = 5;
      const user = await registerUser(t.gql);
      let token = user.refreshToken;
      for (let round = 0; round < ROUNDS; round++) {
        const responses = await Promise.all(Array.from({ length: N }, () => refreshToken(t.gql, token)));
        const winners = responses.filter((r) => r.data?.refresh);
        const losers = responses.filter((r) => !r.data?.refresh);
        expect(winners).toHaveLength(1);
        expect(losers).toHaveLength(N - 1);
        for (const loser of losers) expectUnauthenticated(loser, 'REFRESH_TOKEN_ROTATED');
        const won = winners[0]?.data?.refresh as Payload;
        expect(won.session.id).toBe(user.session.id);
        await expectAccepted(t.gql, won.accessToken, user.user.id);
        token = won.refreshToken;
      }
      // Exactly one rotation per round reached the database, and nothing was revoked.
      expect(await auditCount(t, 'TOKEN_REFRESHED', user.session.id)).toBe(ROUNDS);
      expect(await auditCount(t, 'SESSION_REVOKED', user.session.id)).toBe(0);
      const last = await rotate(t.gql, token);
      expect(last.session.id).toBe(user.session.id);
    });

    // Over HTTP, SQLite's single synchronous connection tends to finish one refresh before the next is read;
    // calling the service directly makes every read happen before any write, so the conditional update decides.
    it('lets exactly one of 10 interleaved refreshes win even when all of them read the token first', async () => {
      const user = await registerUser(t.gql);
      const meta = { ipAddress: '127.0.0.1', userAgent: 'interleaved' };
      const outcomes = await Promise.allSettled(
        Array.from({ length: 10 }, () =>
          t.app.services.sessions.refresh({ em: t.app.orm.em.fork() as Em, meta }, user.refreshToken),
        ),
      );
      const won = outcomes.filter((o) => o.status === 'fulfilled');
      const lost = outcomes.filter((o) => o.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost.map((o) => (o.reason as AuthError).details)).toEqual(
        Array.from({ length: 9 }, () => ({ reason: 'REFRESH_TOKEN_ROTATED' })),
      );
      expect(await auditCount(t, 'TOKEN_REFRESHED', user.session.id)).toBe(1);
      const winner = (won[0] as PromiseFulfilledResult<{ refreshToken: string }>).value;
      expect((await rotate(t.gql, winner.refreshToken)).session.id).toBe(user.session.id);
    });

    it('refuses a spent refresh token after the grace period and revokes the whole session', async () => {
      const user = await registerUser(t.gql);
      const next = await rotate(t.gql, user.refreshToken);
      clock.advance(11 * SECOND);
      expectUnauthenticated(await refreshToken(t.gql, user.refreshToken), 'REFRESH_TOKEN_REUSE');

      // The newest refresh token and the live access token die with the session, at once.
      expectUnauthenticated(await refreshToken(t.gql, next.refreshToken), 'SESSION_REVOKED');
      await expectRevokedAccess(t.gql, next.accessToken);
      await expectRevokedAccess(t.gql, user.accessToken);

      expect(await auditCount(t, 'REFRESH_TOKEN_REUSE_DETECTED', user.session.id)).toBe(1);
      const row = await sessionRow(t, user.session.id);
      expect(row.revokedReason).toBe('REFRESH_TOKEN_REUSE');
      expect(row.revokedAt?.getTime()).toBe(clock.now());
    });

    it('revokes the session when a token spent two rotations ago is replayed, even within the grace', async () => {
      const user = await registerUser(t.gql);
      const second = await rotate(t.gql, user.refreshToken);
      const third = await rotate(t.gql, second.refreshToken);
      expectUnauthenticated(await refreshToken(t.gql, user.refreshToken), 'REFRESH_TOKEN_REUSE');
      expectUnauthenticated(await refreshToken(t.gql, third.refreshToken), 'SESSION_REVOKED');
      await expectRevokedAccess(t.gql, third.accessToken);
      expect(await auditCount(t, 'REFRESH_TOKEN_REUSE_DETECTED', user.session.id)).toBe(1);
    });

    it('treats a made-up token of an earlier generation as invalid, not as reuse', async () => {
      const user = await registerUser(t.gql);
      const next = await rotate(t.gql, user.refreshToken);
      const [sid, , secret, tag] = user.refreshToken.split('.') as [string, string, string, string];
      // Right session, a past generation, but a tag we did not make: someone who only knows the session id.
      const flipped = `${tag.slice(0, -1)}${tag.endsWith('A') ? 'B' : 'A'}`;
      expectUnauthenticated(await refreshToken(t.gql, `${sid}.0.${secret}.${flipped}`), 'INVALID_REFRESH_TOKEN');
      expectUnauthenticated(
        await refreshToken(t.gql, `${sid}.0.${randomBytes(32).toString('base64url')}.${tag}`),
        'INVALID_REFRESH_TOKEN',
      );
      expect(await auditCount(t, 'SESSION_REVOKED', user.session.id)).toBe(0);
      await expectAccepted(t.gql, next.accessToken, user.user.id);
    });

    it('refuses garbage, unknown and forged refresh tokens without revoking the session', async () => {
      const user = await registerUser(t.gql);
      const secret = user.refreshToken.slice(user.session.id.length + 1);
      const forged = [
        '',
        'garbage',
        'x'.repeat(10_000),
        `${randomUUID()}.${randomBytes(32).toString('base64url')}`, // unknown session
        `${user.session.id}.${randomBytes(32).toString('base64url')}`, // right session, wrong secret
        `${user.session.id}.${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`, // one character off
        `${user.session.id}.${secret}x`, // too long
        `${user.session.id.toUpperCase()}.${secret}`, // not the canonical form
        ` ${user.refreshToken}`,
      ];
      for (const token of forged) {
        expectUnauthenticated(await refreshToken(t.gql, token), 'INVALID_REFRESH_TOKEN');
      }
      await expectAccepted(t.gql, user.accessToken, user.user.id);
      const next = await rotate(t.gql, user.refreshToken);
      expect(next.session.id).toBe(user.session.id);
      expect(await auditCount(t, 'SESSION_REVOKED', user.session.id)).toBe(0);
    });
  });

  describe('expiry with REFRESH_TOKEN_TTL=1h and SESSION_MAX_AGE=2h', () => {
    const expiryClock = new TestClock();
    let e: TestApp;
    beforeAll(async () => {
      e = await startTestApp({
        dialect,
        clock: expiryClock,
        env: { REFRESH_TOKEN_TTL: '1h', SESSION_MAX_AGE: '2h' },
      });
    });
    afterAll(() => e?.close());

    it('slides the refresh token lifetime on each rotation but never past the absolute session age', async () => {
      const start = expiryClock.now();
      const user = await registerUser(e.gql);
      expect(user.refreshTokenExpiresAt).toBe(iso(start + HOUR));

      expiryClock.advance(50 * MINUTE);
      const first = await rotate(e.gql, user.refreshToken);
      expect(first.refreshTokenExpiresAt).toBe(iso(start + 110 * MINUTE));
      expect(first.session.expiresAt).toBe(iso(start + 110 * MINUTE));

      // +100m: past the first token's TTL, but the rotated one is alive; its successor is capped at +2h.
      expiryClock.advance(50 * MINUTE);
      const second = await rotate(e.gql, first.refreshToken);
      expect(second.refreshTokenExpiresAt).toBe(iso(start + 2 * HOUR));

      expiryClock.advance(20 * MINUTE);
      expectUnauthenticated(await refreshToken(e.gql, second.refreshToken), 'REFRESH_TOKEN_EXPIRED');
    });

    it('refuses an unused refresh token past its TTL and no longer lists its session', async () => {
      const user = await registerUser(e.gql);
      expiryClock.advance(30 * MINUTE);
      const other = await signIn(e.gql, user.user.email, user.password);
      expiryClock.advance(30 * MINUTE);
      expectUnauthenticated(await refreshToken(e.gql, user.refreshToken), 'REFRESH_TOKEN_EXPIRED');
      // The other session is 30 minutes old: its refresh token is alive (its access token is not).
      const renewed = await rotate(e.gql, other.refreshToken);
      const listed = await mySessions(e.gql, renewed.accessToken);
      expect(listed.map((s) => s.id)).toEqual([other.session.id]);
    });
  });

  describe('logout', () => {
    it('revokes the current session only: its tokens fail at once, other sessions keep working', async () => {
      const user = await registerUser(t.gql);
      const other = await signIn(t.gql, user.user.email, user.password);
      const response = await t.gql('mutation { logout }', {}, { token: user.accessToken });
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual({ logout: true });

      await expectRevokedAccess(t.gql, user.accessToken);
      expectUnauthenticated(await refreshToken(t.gql, user.refreshToken), 'SESSION_REVOKED');
      expectUnauthenticated(await t.gql('mutation { logout }', {}, { token: user.accessToken }), 'SESSION_REVOKED');

      await expectAccepted(t.gql, other.accessToken, user.user.id);
      expect((await rotate(t.gql, other.refreshToken)).session.id).toBe(other.session.id);
      expect((await sessionRow(t, user.session.id)).revokedReason).toBe('LOGOUT');
    });
  });

  describe('User.sessions', () => {
    it('lists active sessions newest first, marking only the caller’s as current', async () => {
      const t0 = clock.now();
      const laptop = await registerWith(t.gql, 'Laptop/1.0');
      clock.advance(SECOND);
      const phone = await signIn(t.gql, laptop.user.email, laptop.password, { 'user-agent': 'Phone/2.0' });
      clock.advance(SECOND);
      const tablet = await signIn(t.gql, laptop.user.email, laptop.password, { 'user-agent': 'Tablet/3.0' });
      const stranger = await registerUser(t.gql);
      await t.gql('mutation { logout }', {}, { token: tablet.accessToken });

      const laptopView: SessionView = {
        id: laptop.session.id,
        current: false,
        userAgent: 'Laptop/1.0',
        ipAddress: '127.0.0.1',
        createdAt: iso(t0),
        lastUsedAt: iso(t0),
        expiresAt: iso(t0 + 30 * DAY),
      };
      const phoneView: SessionView = {
        id: phone.session.id,
        current: false,
        userAgent: 'Phone/2.0',
        ipAddress: '127.0.0.1',
        createdAt: iso(t0 + SECOND),
        lastUsedAt: iso(t0 + SECOND),
        expiresAt: iso(t0 + SECOND + 30 * DAY),
      };
      expect(await mySessions(t.gql, laptop.accessToken)).toEqual([phoneView, { ...laptopView, current: true }]);
      expect(await mySessions(t.gql, phone.accessToken)).toEqual([{ ...phoneView, current: true }, laptopView]);
      expect((await mySessions(t.gql, stranger.accessToken)).map((s) => s.id)).toEqual([stranger.session.id]);

      // A refresh moves lastUsedAt and expiresAt, records the new user agent, and keeps createdAt and the order.
      clock.advance(5 * SECOND);
      const refreshed = await refreshWith(t.gql, laptop.refreshToken, 'Laptop/1.1');
      expect(refreshed.errors).toBeUndefined();
      expect(await mySessions(t.gql, phone.accessToken)).toEqual([
        { ...phoneView, current: true },
        {
          ...laptopView,
          userAgent: 'Laptop/1.1',
          lastUsedAt: iso(clock.now()),
          expiresAt: iso(clock.now() + 30 * DAY),
        },
      ]);
    });
  });

  describe('revokeSession and revokeOtherSessions', () => {
    it('revokes one of my sessions: its access token fails at once and it leaves the list', async () => {
      const user = await registerUser(t.gql);
      clock.advance(SECOND);
      const other = await signIn(t.gql, user.user.email, user.password);
      const response = await revokeSession(t.gql, other.session.id, user.accessToken);
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual({ revokeSession: true });

      await expectRevokedAccess(t.gql, other.accessToken);
      expectUnauthenticated(await refreshToken(t.gql, other.refreshToken), 'SESSION_REVOKED');
      expect((await mySessions(t.gql, user.accessToken)).map((s) => s.id)).toEqual([user.session.id]);
      expect((await sessionRow(t, other.session.id)).revokedReason).toBe('REVOKED_BY_USER');
      await expectAccepted(t.gql, user.accessToken, user.user.id);
    });

    it("answers NOT_FOUND for someone else's session, or an unknown one, and leaves it alive", async () => {
      const user = await registerUser(t.gql);
      const victim = await registerUser(t.gql);
      for (const id of [victim.session.id, randomUUID(), 'not-a-session']) {
        const response = await revokeSession(t.gql, id, user.accessToken);
        expect(errorCode(response)).toBe('NOT_FOUND');
        expect(response.data ?? null).toBeNull();
      }
      await expectAccepted(t.gql, victim.accessToken, victim.user.id);
      expect((await rotate(t.gql, victim.refreshToken)).session.id).toBe(victim.session.id);
      expect(await auditCount(t, 'SESSION_REVOKED', victim.session.id)).toBe(0);
    });

    it('revokes every other session, returns how many, and keeps the current one', async () => {
      const user = await registerUser(t.gql);
      const others = [
        await signIn(t.gql, user.user.email, user.password),
        await signIn(t.gql, user.user.email, user.password),
        await signIn(t.gql, user.user.email, user.password),
      ];
      const bystander = await registerUser(t.gql);
      // One is already gone: it does not count again.
      await t.gql('mutation { logout }', {}, { token: others[2]?.accessToken });

      const response = await t.gql('mutation { revokeOtherSessions }', {}, { token: user.accessToken });
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual({ revokeOtherSessions: 2 });
      for (const other of others) {
        await expectRevokedAccess(t.gql, other.accessToken);
        expectUnauthenticated(await refreshToken(t.gql, other.refreshToken), 'SESSION_REVOKED');
      }
      await expectAccepted(t.gql, user.accessToken, user.user.id);
      expect((await mySessions(t.gql, user.accessToken)).map((s) => s.id)).toEqual([user.session.id]);
      await expectAccepted(t.gql, bystander.accessToken, bystander.user.id);

      const again = await t.gql('mutation { revokeOtherSessions }', {}, { token: user.accessToken });
      expect(again.data).toEqual({ revokeOtherSessions: 0 });
      expect((await rotate(t.gql, user.refreshToken)).session.id).toBe(user.session.id);
    });
  });

  describe('changePassword', () => {
    const CHANGE = `mutation($input: ChangePasswordInput!) { changePassword(input: $input) { ${PAYLOAD} } }`;

    it('refuses a wrong current password with INVALID_CREDENTIALS and changes nothing', async () => {
      const user = await registerUser(t.gql);
      const other = await signIn(t.gql, user.user.email, user.password);
      const response = await t.gql(
        CHANGE,
        { input: { currentPassword: 'not the password', newPassword: 'a brand new secret' } },
        { token: user.accessToken },
      );
      expect(errorCode(response)).toBe('INVALID_CREDENTIALS');
      expect(response.data ?? null).toBeNull();
      await expectAccepted(t.gql, other.accessToken, user.user.id);
      expect((await loginUser(t.gql, user.user.email, user.password)).data?.login.user.id).toBe(user.user.id);
    });

    it('refuses a new password under 8 bytes with BAD_USER_INPUT on newPassword', async () => {
      const user = await registerUser(t.gql);
      const response = await t.gql(
        CHANGE,
        { input: { currentPassword: user.password, newPassword: 'short' } },
        { token: user.accessToken },
      );
      expect(errorCode(response)).toBe('BAD_USER_INPUT');
      expect(extensionsOf(response)?.field).toBe('newPassword');
      expect((await loginUser(t.gql, user.user.email, user.password)).data?.login.user.id).toBe(user.user.id);
    });

    it('sets the password, rotates the current session and revokes every other one', async () => {
      const user = await registerUser(t.gql);
      const others = [
        await signIn(t.gql, user.user.email, user.password),
        await signIn(t.gql, user.user.email, user.password),
      ];
      const bystander = await registerUser(t.gql);
      const newPassword = 'a brand new secret';
      const response = await t.gql<{ changePassword: Payload }>(
        CHANGE,
        { input: { currentPassword: user.password, newPassword } },
        { token: user.accessToken },
      );
      expect(response.errors).toBeUndefined();
      const payload = response.data?.changePassword as Payload;
      expect(payload.session).toMatchObject({ id: user.session.id, current: true });
      expect(payload.user.id).toBe(user.user.id);
      expect(payload.tokenType).toBe('Bearer');
      expect(payload.refreshToken).not.toBe(user.refreshToken);
      expect(payload.refreshToken.startsWith(`${user.session.id}.`)).toBe(true);
      await expectAccepted(t.gql, payload.accessToken, user.user.id);
      await expectAccepted(t.gql, user.accessToken, user.user.id);

      for (const other of others) {
        await expectRevokedAccess(t.gql, other.accessToken);
        expectUnauthenticated(await refreshToken(t.gql, other.refreshToken), 'SESSION_REVOKED');
        expect((await sessionRow(t, other.session.id)).revokedReason).toBe('PASSWORD_CHANGED');
      }
      await expectAccepted(t.gql, bystander.accessToken, bystander.user.id);

      // The current session's old refresh token is spent; the new one carries the session on.
      expectUnauthenticated(await refreshToken(t.gql, user.refreshToken), 'REFRESH_TOKEN_ROTATED');
      expect((await rotate(t.gql, payload.refreshToken)).session.id).toBe(user.session.id);

      expect(errorCode(await loginUser(t.gql, user.user.email, user.password))).toBe('INVALID_CREDENTIALS');
      const relogin = await loginUser(t.gql, user.user.email, newPassword);
      expect(relogin.errors).toBeUndefined();
      expect(relogin.data?.login.user.id).toBe(user.user.id);
      expect(await auditCount(t, 'PASSWORD_CHANGED', user.session.id)).toBe(1);
    });
  });

  describe('anonymous callers', () => {
    it('get UNAUTHENTICATED from logout, revokeSession, revokeOtherSessions and changePassword', async () => {
      const victim = await registerUser(t.gql);
      const operations: [string, Record<string, unknown>][] = [
        ['mutation { logout }', {}],
        [REVOKE_SESSION, { id: victim.session.id }],
        ['mutation { revokeOtherSessions }', {}],
        [
          'mutation($input: ChangePasswordInput!) { changePassword(input: $input) { accessToken } }',
          { input: { currentPassword: victim.password, newPassword: 'taken over!' } },
        ],
      ];
      for (const [query, variables] of operations) {
        const response = await t.gql(query, variables);
        expectUnauthenticated(response, 'AUTHENTICATION_REQUIRED');
      }
      await expectAccepted(t.gql, victim.accessToken, victim.user.id);
      expect((await loginUser(t.gql, victim.user.email, victim.password)).errors).toBeUndefined();
    });

    it('see no user on me, and an invalid token is refused rather than treated as anonymous', async () => {
      const anonymous = await t.gql('{ me { id sessions { id } } }');
      expect(anonymous.errors).toBeUndefined();
      expect(anonymous.data).toEqual({ me: null });
      expectUnauthenticated(await me(t.gql, 'not.a.token'), 'INVALID_TOKEN');
    });

    it('may read the sessions of the account they have just signed in to, in the same response', async () => {
      const user = await registerUser(t.gql);
      const response = await t.gql<{ login: { session: { id: string }; user: { sessions: { id: string }[] } } }>(
        `mutation($input: LoginInput!) { login(input: $input) { session { id } user { sessions { id } } } }`,
        { input: { email: user.user.email, password: user.password } },
      );
      expect(response.errors).toBeUndefined();
      const login = response.data?.login;
      expect(login?.user.sessions.map((s) => s.id).sort()).toEqual([user.session.id, login?.session.id].sort());
    });
  });

  describe('after a restart on the same database', () => {
    const dir = mkdtempSync(join(tmpdir(), 'auth-sessions-restart-'));
    const env = { JWT_PRIVATE_KEY: ed25519Pem() };
    const running = new Set<TestApp>();
    afterAll(async () => {
      for (const app of running) await app.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('still refuses the access tokens of sessions revoked before the restart', async () => {
      // The database lives in `dir`, not in the app's own directory, so it outlives the first app.
      const url = await databaseUrl(dialect, dir);
      const first = await startTestApp({ databaseUrl: url, env });
      running.add(first);
      const user = await registerUser(first.gql);
      const revoked = await signIn(first.gql, user.user.email, user.password);
      await revokeSession(first.gql, revoked.session.id, user.accessToken);
      await expectRevokedAccess(first.gql, revoked.accessToken);
      running.delete(first);
      await first.close();

      const second = await startTestApp({ databaseUrl: url, env });
      running.add(second);
      // Same signing key: the live session's token still works, so the refusal below is the revocation's.
      await expectAccepted(second.gql, user.accessToken, user.user.id);
      await expectRevokedAccess(second.gql, revoked.accessToken);
      expectUnauthenticated(await refreshToken(second.gql, revoked.refreshToken), 'SESSION_REVOKED');
    });
  });
});
