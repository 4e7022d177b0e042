// A change committed but never published: the instance that made it stopped between its commit and its PUBLISH
// (modelled by a PUBLISH that throws, as the process's death would leave it: the row written, no message sent).
// Every instance still learns it from the database while Redis is up, a sessionRevoked subscriber is told, and a
// request that the uninformed instance serves meanwhile is not answered as if it had made the change itself; and so
// it does of a revocation whose transaction waited for the session's row lock longer than the window those reads
// look back on (its `revokedAt` is stamped once the row is locked, not before the wait).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import { RECONCILE_GRACE_MS, RECONCILE_WINDOW_MS } from '../src/sessions/revoked-sessions.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, type TestApp } from './support/app.ts';
import { type InstancePair, startInstancePair } from './support/bus.ts';
import { createTestClient, requestToken } from './support/client-credentials.ts';
import { TestClock } from './support/clock.ts';
import { expectUnauthenticated } from './support/expect.ts';
import { errorCode, me, registerUser, revokeSession, signIn } from './support/graphql.ts';
import { rowHolder } from './support/row-locks.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';
import { eventually, subscribe } from './support/subscriptions.ts';

/** Makes `app`'s next publications fail as a process killed right after its commit would: nothing reaches Redis. */
function dieBeforePublishing(app: App): () => void {
  const bus = app.bus as { -readonly [K in keyof App['bus']]: App['bus'][K] };
  const { publish, publishClientChanged, publishUserChanged } = bus;
  const died = () => Promise.reject(new Error('the instance stopped before publishing'));
  bus.publish = died;
  bus.publishClientChanged = died;
  bus.publishUserChanged = died;
  return () => {
    bus.publish = publish;
    bus.publishClientChanged = publishClientChanged;
    bus.publishUserChanged = publishUserChanged;
  };
}

describe.skipIf(!serviceAvailable('redis-server'))('changes committed but never published', () => {
  describe.each(dialects())('on %s', (dialect) => {
    let redis: RunningService;
    let pair: InstancePair;
    let a: TestApp;
    let b: TestApp;

    beforeAll(async () => {
      redis = await startRedis();
      pair = await startInstancePair(dialect, redis.url);
      ({ a, b } = pair);
    });

    afterAll(async () => {
      await pair?.close();
      await redis?.stop();
    });

    it('a session revoked on A that A never published: refused on every instance, its subscriber on B told', async () => {
      const user = await registerUser(a.gql);
      const victim = await signIn(b.gql, user.user.email, user.password);
      const watcher = subscribe<{ sessionRevoked: { sessionId: string; reason: string } }>(
        b.url,
        'subscription { sessionRevoked { sessionId reason } }',
        user.accessToken,
      );
      try {
        await eventually(async () =>
          /^graphql_ws_subscriptions_open 1$/m.test(await (await fetch(`${b.url}/metrics`)).text()),
        );
        const revived = dieBeforePublishing(a.app);
        const revoked = await revokeSession(a.gql, victim.session.id, user.accessToken).finally(revived);
        expect(errorCode(revoked)).toBe('INTERNAL_SERVER_ERROR');

        // Neither instance heard of it, yet the row says revoked: a logout with the session's token, on B at once,
        // is not answered `true` (it revoked nothing and published nothing).
        expectUnauthenticated(await b.gql('mutation { logout }', {}, { token: victim.accessToken }), 'SESSION_REVOKED');

        // Both instances come to refuse its access token, and B's subscriber hears of it.
        for (const instance of [a, b]) {
          await eventually(
            async () => errorCode(await me(instance.gql, victim.accessToken)) === 'UNAUTHENTICATED',
            10_000,
          );
          expectUnauthenticated(await me(instance.gql, victim.accessToken), 'SESSION_REVOKED');
        }
        await watcher.next(1, 10_000);
        expect(watcher.events).toEqual([
          { sessionRevoked: { sessionId: victim.session.id, reason: 'REVOKED_BY_USER' } },
        ]);
        // The session that revoked it is untouched.
        expect((await me(b.gql, user.accessToken)).data?.me).toEqual({ id: user.user.id });
      } finally {
        await watcher.dispose();
      }
    });

    /** Signs `user` in on B with its refresh token in a cookie: the session's access token, id and `Cookie` pair. */
    async function cookieSession(user: { user: { email: string }; password: string }) {
      const login = await b.gql<{ login: { accessToken: string; refreshToken: string; session: { id: string } } }>(
        'mutation($input: LoginInput!) { login(input: $input) { accessToken session { id } } }',
        { input: { email: user.user.email, password: user.password, tokenDelivery: 'COOKIE' } },
      );
      const session = login.data?.login as { accessToken: string; session: { id: string } };
      const cookie = login.headers.getSetCookie()[0]?.split(';')[0] as string;
      expect(cookie).toMatch(/^refresh_token=./);
      return { ...session, cookie };
    }

    /** Revokes `sessionId` on A without A publishing it (as `user`, whose other session does it). */
    async function revokeUnheardOf(user: { accessToken: string }, sessionId: string) {
      const revived = dieBeforePublishing(a.app);
      await revokeSession(a.gql, sessionId, user.accessToken).finally(revived);
    }

    const setCookies = (response: { headers: Headers }) =>
      response.headers.getSetCookie().map((header) =>
        header
          .split(';')
          .slice(0, 2)
          .map((part) => part.trim()),
      );

    // Every answer that the caller's own session is over clears that session's cookie, whichever flow found out:
    // the logout that had nothing left to revoke, and a change that holds its session (holdCallerSession).
    it.each([
      ['logout', 'mutation { logout }'],
      ['startTotpEnrollment', 'mutation { startTotpEnrollment { secret } }'],
    ])(
      '%s on B from a cookie session ended unheard of: SESSION_REVOKED, and its cookie is cleared',
      async (field, query) => {
        const user = await registerUser(a.gql);
        const victim = await cookieSession(user);
        await revokeUnheardOf(user, victim.session.id);
        const answer = await b.gql(query, {}, { token: victim.accessToken, headers: { cookie: victim.cookie } });
        expectUnauthenticated(answer, 'SESSION_REVOKED');
        // Answered by the field itself, not by a token B already refuses (that error would have no path).
        expect(answer.errors?.[0]?.path).toEqual([field]);
        expect(setCookies(answer)).toEqual([['refresh_token=', 'Max-Age=0']]);

        // The same answer to a session that is not the cookie's leaves that cookie alone.
        const other = await signIn(b.gql, user.user.email, user.password);
        const live = await cookieSession(user);
        await revokeUnheardOf(user, other.session.id);
        const unrelated = await b.gql(query, {}, { token: other.accessToken, headers: { cookie: live.cookie } });
        expectUnauthenticated(unrelated, 'SESSION_REVOKED');
        expect(unrelated.errors?.[0]?.path).toEqual([field]);
        expect(unrelated.headers.getSetCookie()).toEqual([]);
      },
    );

    it('a cookie naming a session this instance knows is revoked is cleared, even when the token is refused first', async () => {
      const user = await registerUser(a.gql);
      const victim = await cookieSession(user);
      const revoked = await revokeSession(b.gql, victim.session.id, user.accessToken);
      expect(revoked.data).toEqual({ revokeSession: true });
      // Refused while the request's context is built: no field ran.
      const answer = await b.gql(
        '{ me { id } }',
        {},
        { token: victim.accessToken, headers: { cookie: victim.cookie } },
      );
      expectUnauthenticated(answer, 'SESSION_REVOKED');
      expect(answer.errors?.[0]?.path).toBeUndefined();
      expect(setCookies(answer)).toEqual([['refresh_token=', 'Max-Age=0']]);
      // Another session's live cookie on the same refused request is left alone.
      const live = await cookieSession(user);
      const other = await b.gql('{ me { id } }', {}, { token: victim.accessToken, headers: { cookie: live.cookie } });
      expectUnauthenticated(other, 'SESSION_REVOKED');
      expect(other.headers.getSetCookie()).toEqual([]);
    });

    it('refresh by cookie and logout in one mutation: the rotated cookie of the session just ended is not handed out', async () => {
      const user = await registerUser(a.gql);
      const victim = await cookieSession(user);
      const answer = await b.gql(
        'mutation { refresh { accessToken } logout }',
        {},
        { token: victim.accessToken, headers: { cookie: victim.cookie } },
      );
      expect(answer.errors).toBeUndefined();
      expect(answer.data).toMatchObject({ logout: true });
      expect(setCookies(answer)).toEqual([['refresh_token=', 'Max-Age=0']]);
    });

    it("a refresh's SESSION_REVOKED is about the token it spends: the caller's own cookie session is left alone", async () => {
      const user = await registerUser(a.gql);
      const live = await cookieSession(user);
      const spent = await signIn(b.gql, user.user.email, user.password);
      await revokeUnheardOf(user, spent.session.id);
      // Under an alias too: it is the field, not its response key, whose error is about another session.
      for (const field of ['refresh', 'renewed: refresh']) {
        const answer = await b.gql(
          `mutation($t: String!) { ${field}(refreshToken: $t) { accessToken } }`,
          { t: spent.refreshToken },
          { token: live.accessToken, headers: { cookie: live.cookie } },
        );
        expectUnauthenticated(answer, 'SESSION_REVOKED');
        expect(answer.headers.getSetCookie()).toEqual([]);
      }
      expect((await me(b.gql, live.accessToken)).data?.me).toEqual({ id: user.user.id });
    });

    it("an account deleted on A that A never published: its sessions' tokens are refused on every instance", async () => {
      const user = await registerUser(a.gql);
      const victim = await signIn(b.gql, user.user.email, user.password);
      const roles = (instance: TestApp) => instance.gql('{ me { id roles } }', {}, { token: victim.accessToken });
      expect((await roles(b)).data).toEqual({ me: { id: user.user.id, roles: ['USER'] } });
      const watcher = subscribe<{ sessionRevoked: { sessionId: string; reason: string } }>(
        b.url,
        'subscription { sessionRevoked { sessionId reason } }',
        victim.accessToken,
      );
      await eventually(async () =>
        /^graphql_ws_subscriptions_open 1$/m.test(await (await fetch(`${b.url}/metrics`)).text()),
      );

      const revived = dieBeforePublishing(a.app);
      const deleted = await a
        .gql(
          'mutation($password: String) { deleteAccount(password: $password) }',
          { password: user.password },
          {
            token: user.accessToken,
          },
        )
        .finally(revived);
      expect(errorCode(deleted)).toBe('INTERNAL_SERVER_ERROR');

      // The sessions are gone from the table with the user; only the (anonymised) audit trail says they were
      // revoked. `me { id roles }` is answered from the token alone: nothing but the revoked set stands in its way.
      for (const instance of [a, b]) {
        await eventually(async () => errorCode(await roles(instance)) === 'UNAUTHENTICATED', 10_000);
        expectUnauthenticated(await roles(instance), 'SESSION_REVOKED');
      }
      // The session's own subscriber on B is told, though the trail no longer names its user.
      try {
        await watcher.next(1, 10_000);
        expect(watcher.events).toEqual([
          { sessionRevoked: { sessionId: victim.session.id, reason: 'ACCOUNT_DELETED' } },
        ]);
      } finally {
        await watcher.dispose();
      }
    });

    it('a client disabled on A that A never published: its service token is refused on every instance', async () => {
      const admin = await signInAsAdmin(a);
      const client = await createTestClient(a.gql, admin.accessToken, {
        id: `unpublished-${Date.now().toString(36)}`,
        scopes: ['users:read'],
      });
      const issued = await requestToken(b.url, { clientId: client.id, secret: client.secret as string });
      expect(issued.status).toBe(200);
      const token = issued.body.access_token as string;
      const read = (instance: TestApp) =>
        instance.gql('query($id: ID!) { user(id: $id) { id } }', { id: admin.user.id }, { token });
      expect((await read(b)).data).toEqual({ user: { id: admin.user.id } });

      const revived = dieBeforePublishing(a.app);
      const disabled = await a
        .gql(
          'mutation($id: ID!) { setClientDisabled(id: $id, disabled: true) { disabled } }',
          { id: client.id },
          { token: admin.accessToken },
        )
        .finally(revived);
      expect(errorCode(disabled)).toBe('INTERNAL_SERVER_ERROR');

      for (const instance of [a, b]) {
        await eventually(async () => errorCode(await read(instance)) === 'UNAUTHENTICATED', 10_000);
      }
      // And no new token for it either.
      expect((await requestToken(b.url, { clientId: client.id, secret: client.secret as string })).status).toBe(401);
    });
  });
});

// MariaDB only: a connection of the test's holds the session's row while the revocation's locking read waits on it.
describe.skipIf(!serviceAvailable('redis-server') || !dialects().includes('mysql'))(
  'a revocation that waited on its locks, never published',
  () => {
    let redis: RunningService;
    let pair: InstancePair;
    let a: TestApp;
    let b: TestApp;
    // Both instances' clock: the wait is made to last longer than RECONCILE_WINDOW_MS by moving it.
    const clock = new TestClock();

    beforeAll(async () => {
      redis = await startRedis();
      pair = await startInstancePair('mysql', redis.url, { clock });
      ({ a, b } = pair);
    });

    afterAll(async () => {
      await pair?.close();
      await redis?.stop();
    });

    it("waited on the session's row longer than the reconciliation window: still refused on B", async () => {
      const user = await registerUser(a.gql);
      const victim = await signIn(b.gql, user.user.email, user.password);
      // Revoked unheard of before the wait, so stamped before the clock moves: only a read of everything (which B
      // makes once it sees its clock jump past half the window since its last read) finds it. B refusing it says
      // that read is done, and that what B reads from then on is the window alone.
      const marker = await signIn(b.gql, user.user.email, user.password);
      const revivedMarker = dieBeforePublishing(a.app);
      await revokeSession(a.gql, marker.session.id, user.accessToken).finally(revivedMarker);

      const holder = await rowHolder(a.databaseUrl);
      try {
        await holder.hold('SELECT id FROM sessions WHERE id = ? FOR UPDATE', [victim.session.id]);
        const revived = dieBeforePublishing(a.app);
        let ended = false;
        const revoking = revokeSession(a.gql, victim.session.id, user.accessToken).finally(() => {
          ended = true;
          revived();
        });
        await holder.waitingOn('select%from `sessions`%for update%', () => ended);
        expect(ended).toBe(false);

        clock.advance(RECONCILE_WINDOW_MS + 1_000);
        await eventually(async () => errorCode(await me(b.gql, marker.accessToken)) === 'UNAUTHENTICATED', 10_000);
        expect((await me(b.gql, victim.accessToken)).data?.me).toEqual({ id: user.user.id });

        await holder.release();
        expect(errorCode(await revoking)).toBe('INTERNAL_SERVER_ERROR');
      } finally {
        await holder.end();
      }

      // Past the grace after the commit, B's reads of the window find it.
      clock.advance(RECONCILE_GRACE_MS + 1_000);
      await eventually(async () => errorCode(await me(b.gql, victim.accessToken)) === 'UNAUTHENTICATED', 10_000);
      expectUnauthenticated(await me(b.gql, victim.accessToken), 'SESSION_REVOKED');
    });
  },
);
