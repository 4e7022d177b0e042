// sessionRevoked over graphql-ws and SSE, for every revocation reason, on the in-process bus and on Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { errorCode, loginUser, type Payload, refreshToken, registerUser, revokeSession } from './support/graphql.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';
import { subscribe } from './support/subscriptions.ts';

const SUBSCRIPTION = 'subscription { sessionRevoked { sessionId reason revokedAt } }';
type Event = { sessionRevoked: { sessionId: string; reason: string; revokedAt: string } };

async function makeAdmin(t: TestApp): Promise<Payload> {
  const admin = await registerUser(t.gql);
  const em = t.app.orm.em.fork() as Em;
  await em.nativeUpdate(User, { id: admin.user.id }, { roles: 'USER,ADMIN' });
  const login = await loginUser(t.gql, admin.user.email, admin.password);
  return login.data?.login as Payload;
}

function suite(label: string, env: () => Record<string, string>) {
  describe(`sessionRevoked (${label})`, () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp({ env: env() });
    });
    afterAll(() => t?.close());

    /** A user signed in twice: `watcher` subscribes, `other` is the session that gets revoked. */
    async function twoSessions() {
      const watcher = await registerUser(t.gql);
      const other = (await loginUser(t.gql, watcher.user.email, watcher.password)).data?.login as Payload;
      const subscription = subscribe<Event>(t.url, SUBSCRIPTION, watcher.accessToken);
      // An event only reaches subscriptions that exist: make sure this one does before revoking.
      await new Promise((r) => setTimeout(r, 100));
      return { watcher, other, subscription };
    }

    it('tells the subscriber when another of its sessions is revoked (REVOKED_BY_USER), and keeps going', async () => {
      const { watcher, other, subscription } = await twoSessions();
      const revoked = await revokeSession(t.gql, other.session.id, watcher.accessToken);
      expect(revoked.data).toEqual({ revokeSession: true });
      const event = await subscription.next(1);
      expect(event.sessionRevoked).toMatchObject({ sessionId: other.session.id, reason: 'REVOKED_BY_USER' });
      expect(new Date(event.sessionRevoked.revokedAt).getTime()).toBeGreaterThan(0);
      // The watcher's own session is fine: its socket stays open for the next event.
      const third = (await loginUser(t.gql, watcher.user.email, watcher.password)).data?.login as Payload;
      await t.gql('mutation { logout }', {}, { token: third.accessToken });
      expect((await subscription.next(2)).sessionRevoked).toMatchObject({
        sessionId: third.session.id,
        reason: 'LOGOUT',
      });
      await subscription.dispose();
    });

    it('reports PASSWORD_CHANGED for the sessions a password change ends', async () => {
      const { other, subscription } = await twoSessions();
      const changed = await t.gql(
        'mutation($input: ChangePasswordInput!) { changePassword(input: $input) { accessToken } }',
        { input: { currentPassword: 'correct horse battery', newPassword: 'another good password' } },
        { token: other.accessToken },
      );
      expect(changed.errors).toBeUndefined();
      // The watcher's own session is one of the "other" sessions here: event, complete, 4403.
      expect((await subscription.next(1)).sessionRevoked.reason).toBe('PASSWORD_CHANGED');
      await subscription.completed;
      expect(await subscription.closed).toBe(4403);
    });

    it('reports REFRESH_TOKEN_REUSE when a spent refresh token comes back', async () => {
      const { other, subscription } = await twoSessions();
      const rotated = await refreshToken(t.gql, other.refreshToken);
      expect(rotated.errors).toBeUndefined();
      const second = await refreshToken(t.gql, rotated.data?.refresh.refreshToken as string);
      expect(second.errors).toBeUndefined();
      // Two generations back: reuse whatever the grace says.
      expect(errorCode(await refreshToken(t.gql, other.refreshToken))).toBe('UNAUTHENTICATED');
      expect((await subscription.next(1)).sessionRevoked).toMatchObject({
        sessionId: other.session.id,
        reason: 'REFRESH_TOKEN_REUSE',
      });
      await subscription.dispose();
    });

    it('reports REVOKED_BY_ADMIN when an admin ends the sessions, and closes the subscriber with 4403', async () => {
      const { watcher, other, subscription } = await twoSessions();
      const admin = await makeAdmin(t);
      const result = await t.gql(
        'mutation($id: ID!) { revokeUserSessions(userId: $id) }',
        { id: watcher.user.id },
        {
          token: admin.accessToken,
        },
      );
      expect(result.data).toEqual({ revokeUserSessions: 2 });
      await subscription.completed;
      const ids = subscription.events.map((e) => e.sessionRevoked.sessionId).sort();
      expect(ids).toEqual([watcher.session.id, other.session.id].sort());
      expect(subscription.events.every((e) => e.sessionRevoked.reason === 'REVOKED_BY_ADMIN')).toBe(true);
      expect(await subscription.closed).toBe(4403);
    });

    it("delivers the event for the subscriber's own session, then completes and closes the socket with 4403", async () => {
      const { watcher, subscription } = await twoSessions();
      await t.gql('mutation { logout }', {}, { token: watcher.accessToken });
      expect((await subscription.next(1)).sessionRevoked).toMatchObject({
        sessionId: watcher.session.id,
        reason: 'LOGOUT',
      });
      await subscription.completed;
      expect(await subscription.closed).toBe(4403);
      expect(subscription.events).toHaveLength(1);
    });

    it('refuses an anonymous subscription with UNAUTHENTICATED', async () => {
      const subscription = subscribe<Event>(t.url, SUBSCRIPTION);
      await subscription.completed;
      expect(subscription.events).toEqual([]);
      expect(JSON.stringify(subscription.errors)).toContain('UNAUTHENTICATED');
      await subscription.dispose();
    });

    it('delivers events over server-sent events too', async () => {
      const watcher = await registerUser(t.gql);
      const other = (await loginUser(t.gql, watcher.user.email, watcher.password)).data?.login as Payload;
      const controller = new AbortController();
      const response = await fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          authorization: `Bearer ${watcher.accessToken}`,
        },
        body: JSON.stringify({ query: SUBSCRIPTION }),
        signal: controller.signal,
      });
      expect(response.headers.get('content-type')).toContain('text/event-stream');
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      await new Promise((r) => setTimeout(r, 100));
      await t.gql('mutation { logout }', {}, { token: other.accessToken });
      let text = '';
      while (!text.includes('sessionRevoked')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      controller.abort();
      expect(text).toContain(`"sessionId":"${other.session.id}"`);
      expect(text).toContain('"reason":"LOGOUT"');
    });
  });
}

suite('in process', () => ({}));

describe.skipIf(!serviceAvailable('redis-server'))('with Redis', () => {
  let redis: RunningService;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis?.stop());
  suite('Redis', () => ({ REDIS_URL: redis.url }));
});

describe('token expiry while subscribed', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { ACCESS_TOKEN_TTL: '2s', JWT_CLOCK_TOLERANCE: '0s' } });
  });
  afterAll(() => t?.close());

  it('completes the subscription and closes the socket when the access token expires', async () => {
    const user = await registerUser(t.gql);
    const started = Date.now();
    const subscription = subscribe<Event>(t.url, SUBSCRIPTION, user.accessToken);
    const code = await subscription.closed;
    const expiresAt = new Date(user.accessTokenExpiresAt).getTime();
    expect(code).toBe(4403);
    // Completed by the server before the close (a close would reach the client as an error instead).
    await subscription.completed;
    expect(subscription.errors).toEqual([]);
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt - 50);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
