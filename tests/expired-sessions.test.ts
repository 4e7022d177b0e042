// A session whose refresh token has expired is over: not listed, not counted or announced by the bulk
// revocations, NOT_FOUND for revokeSession; and no access token of a session outlives its refresh token.
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session, User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import type { SessionRevokedEvent } from '../src/events/revocation-bus.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { createTestClient } from './support/client-credentials.ts';
import { TestClock } from './support/clock.ts';
import { expectUnauthenticated } from './support/expect.ts';
import {
  errorCode,
  type Gql,
  type GraphQLResponse,
  LOGIN_MUTATION,
  loginUser,
  me,
  PAYLOAD,
  type Payload,
  refreshToken,
  registerUser,
  revokeSession,
} from './support/graphql.ts';
import { type RowHolder, rowHolder } from './support/row-locks.ts';
import { eventually } from './support/subscriptions.ts';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const PASSWORD = 'correct horse battery';
const CHANGE_PASSWORD = `mutation($input: ChangePasswordInput!) { changePassword(input: $input) { ${PAYLOAD} } }`;
/**
 * Sessions that end 10 minutes after their last refresh (each refresh moves the end), with access tokens as long:
 * a session's access token is valid up to the session's end, which a refresh could push back.
 */
/**
 * A revocation's locking read of the sessions (revokeIn, revokeByClientIn): it reads their ends, which
 * holdCallerSession's read of the caller's session does not.
 */
const REVOCATION_READ = 'select%`expires_at`%from `sessions`%for update%';
const SLIDING = { ACCESS_TOKEN_TTL: '10m', REFRESH_TOKEN_TTL: '10m', SESSION_MAX_AGE: '1d' };

describe.each(dialects())('expired sessions on %s', (dialect) => {
  let t: TestApp;
  const clock = new TestClock();
  const events: SessionRevokedEvent[] = [];
  const gql: Gql = (query, variables, options) => t.gql(query, variables, options);

  beforeAll(async () => {
    t = await startTestApp({ dialect, clock, env: { REFRESH_TOKEN_TTL: '30d', SESSION_MAX_AGE: '90d' } });
    t.app.bus.subscribe((event) => events.push(event));
  });
  afterAll(() => t?.close());

  /** A user with one session that expired (A) and one alive (B, with a fresh access token). */
  async function expiredAndAlive() {
    const user = await registerUser(gql);
    const expired = user;
    clock.advance(20 * DAY);
    const alive = (await loginUser(gql, user.user.email, user.password)).data?.login as Payload;
    clock.advance(11 * DAY);
    const fresh = (await refreshToken(gql, alive.refreshToken)).data?.refresh as Payload;
    expect(fresh.session.id).toBe(alive.session.id);
    return { user, expired, alive: fresh };
  }

  it('revokeOtherSessions neither counts nor announces a session that has expired', async () => {
    const { expired, alive } = await expiredAndAlive();
    const before = events.length;
    const response = await gql('mutation { revokeOtherSessions }', {}, { token: alive.accessToken });
    expect(response.data).toEqual({ revokeOtherSessions: 0 });
    expect(events.slice(before).flatMap((event) => event.sessionIds)).not.toContain(expired.session.id);
  });

  it('revokeSession of an expired session is NOT_FOUND', async () => {
    const { expired, alive } = await expiredAndAlive();
    const response = await revokeSession(gql, expired.session.id, alive.accessToken);
    expect(errorCode(response)).toBe('NOT_FOUND');
  });

  it('revokeUserSessions counts and announces only the active sessions', async () => {
    const admin = await registerUser(gql);
    await (t.app.orm.em.fork() as Em).nativeUpdate(User, { id: admin.user.id }, { roles: 'USER,ADMIN' });
    const { user, expired, alive } = await expiredAndAlive();
    const signedIn = (await loginUser(gql, admin.user.email, admin.password)).data?.login as Payload;
    const adminToken = signedIn.accessToken;
    const before = events.length;
    const response = await gql(
      'mutation($id: ID!) { revokeUserSessions(userId: $id) }',
      { id: user.user.id },
      { token: adminToken },
    );
    expect(response.data).toEqual({ revokeUserSessions: 1 });
    const announced = events.slice(before).flatMap((event) => event.sessionIds);
    expect(announced).toEqual([alive.session.id]);
    expect(announced).not.toContain(expired.session.id);
  });

  it('issues no access token that outlives its session', async () => {
    const capped = await startTestApp({
      dialect,
      clock,
      env: { ACCESS_TOKEN_TTL: '15m', REFRESH_TOKEN_TTL: '1h', SESSION_MAX_AGE: '1h' },
    });
    try {
      const user = await registerUser(capped.gql);
      clock.advance(55 * MINUTE);
      const refreshed = (await refreshToken(capped.gql, user.refreshToken)).data?.refresh as Payload;
      expect(refreshed.refreshTokenExpiresAt).toBe(user.refreshTokenExpiresAt);
      // Five minutes left of the session, not the full fifteen: exp is the session's end, in whole seconds.
      const end = Math.floor(Date.parse(refreshed.refreshTokenExpiresAt) / 1000);
      expect(decodeJwt(refreshed.accessToken).exp).toBe(end);
      expect(refreshed.accessTokenExpiresAt).toBe(new Date(end * 1000).toISOString());
    } finally {
      await capped.close();
    }
  });
});

// MariaDB only: a connection of the test's holds the expiring session's row while the revocation's locking read
// waits on it (SQLite runs one transaction at a time in the process: no wait to force). The session's refresh token
// expires during the wait; the revocation must then treat it as it treats one expired before it started.
describe.each(dialects().filter((dialect) => dialect === 'mysql'))(
  'a session that expires while its revocation waits on its row, on %s',
  (dialect) => {
    let t: TestApp;
    const clock = new TestClock();
    const events: SessionRevokedEvent[] = [];
    const gql: Gql = (query, variables, options) => t.gql(query, variables, options);

    beforeAll(async () => {
      t = await startTestApp({ dialect, clock, env: SLIDING });
      t.app.bus.subscribe((event) => events.push(event));
    });
    afterAll(() => t?.close());

    /**
     * Runs `revocation` while the test holds the row of the session `held` (default `expiring`), moves the clock
     * past `expiring`'s end while the revocation waits on it, then lets it go; answers the revocation's response
     * and the session ids announced.
     */
    async function revokedAcrossItsEnd<T>(expiring: Payload, revocation: () => Promise<T>, held = expiring) {
      const holder = await rowHolder(t.databaseUrl);
      try {
        await holder.hold('SELECT id FROM sessions WHERE id = ? FOR UPDATE', [held.session.id]);
        const before = events.length;
        let ended = false;
        const running = revocation().finally(() => {
          ended = true;
        });
        await holder.waitingOn(REVOCATION_READ, () => ended);
        expect(ended).toBe(false);
        clock.advance(2 * MINUTE);
        expect(Date.parse(expiring.refreshTokenExpiresAt)).toBeLessThan(clock.now());
        await holder.release();
        const response = await running;
        return { response, announced: events.slice(before).flatMap((event) => event.sessionIds) };
      } finally {
        await holder.end();
      }
    }

    /** A user with a session a minute from its end (`expiring`) and one alive, with a fresh access token. */
    async function expiringAndAlive(clientId?: string) {
      const user = await registerUser(gql);
      const expiring =
        clientId === undefined
          ? user
          : ((
              await gql<{ login: Payload }>(LOGIN_MUTATION, {
                input: { email: user.user.email, password: user.password, clientId },
              })
            ).data?.login as Payload);
      clock.advance(5 * MINUTE);
      const alive = (await loginUser(gql, user.user.email, user.password)).data?.login as Payload;
      clock.advance(4 * MINUTE);
      const fresh = (await refreshToken(gql, alive.refreshToken)).data?.refresh as Payload;
      expect(fresh.session.id).toBe(alive.session.id);
      expect(Date.parse(expiring.refreshTokenExpiresAt) - clock.now()).toBe(MINUTE);
      return { user, expiring, alive: fresh };
    }

    /**
     * A session of `expiring`'s user whose id sorts after `expiring`'s: `alive` if it does, else a new one. A
     * revocation's one locking read takes the user's rows in primary-key order, so with the expiring session's row
     * first it holds that row while it waits at the asker's, which the test holds.
     */
    async function sortedAfter(expiring: Payload, alive: Payload): Promise<Payload> {
      for (let candidate = alive; ; ) {
        const [first] = await (t.app.orm.em.fork() as Em).find(
          Session,
          { id: { $in: [expiring.session.id, candidate.session.id] } },
          { orderBy: { id: 'asc' }, fields: ['id'] },
        );
        if (first?.id === expiring.session.id) return candidate;
        candidate = (await loginUser(gql, expiring.user.email, PASSWORD)).data?.login as Payload;
      }
    }

    /**
     * Holds `asker`'s row and sends its revokeOtherSessions, whose one locking read takes the user's rows up to that
     * one (the expiring session's first: sortedAfter) and waits there; then sends `request`, waits until `waits`
     * sees it queue behind the revocation, moves the clock past the expiring session's end and lets both go. Both
     * answers.
     */
    async function queuedBehindARevocation(
      asker: Payload,
      request: () => Promise<GraphQLResponse>,
      waits: (holder: RowHolder, ended: () => boolean) => Promise<unknown>,
    ): Promise<{ revocation: GraphQLResponse; queued: GraphQLResponse }> {
      const holder = await rowHolder(t.databaseUrl);
      try {
        await holder.hold('SELECT id FROM sessions WHERE id = ? FOR UPDATE', [asker.session.id]);
        let revocationEnded = false;
        const revocation = gql('mutation { revokeOtherSessions }', {}, { token: asker.accessToken }).finally(() => {
          revocationEnded = true;
        });
        await holder.waitingOn(REVOCATION_READ, () => revocationEnded);
        expect(revocationEnded).toBe(false);
        let requestEnded = false;
        const queued = request().finally(() => {
          requestEnded = true;
        });
        await waits(holder, () => requestEnded);
        expect(requestEnded).toBe(false);
        expect(revocationEnded).toBe(false);
        clock.advance(2 * MINUTE);
        await holder.release();
        return { revocation: await revocation, queued: await queued };
      } finally {
        await holder.end();
      }
    }

    const stillUnrevoked = async (sessionId: string) => {
      const row = await (t.app.orm.em.fork() as Em).findOneOrFail(Session, { id: sessionId });
      expect(row.revokedAt).toBeNull();
    };

    it('revokeOtherSessions neither counts nor announces it', async () => {
      const { expiring, alive } = await expiringAndAlive();
      const { response, announced } = await revokedAcrossItsEnd(expiring, () =>
        gql('mutation { revokeOtherSessions }', {}, { token: alive.accessToken }),
      );
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual({ revokeOtherSessions: 0 });
      expect(announced).toEqual([]);
      await stillUnrevoked(expiring.session.id);
    });

    it('revokeSession of it is NOT_FOUND', async () => {
      const { expiring, alive } = await expiringAndAlive();
      const { response, announced } = await revokedAcrossItsEnd(expiring, () =>
        revokeSession(gql, expiring.session.id, alive.accessToken),
      );
      expect(errorCode(response)).toBe('NOT_FOUND');
      expect(announced).toEqual([]);
      await stillUnrevoked(expiring.session.id);
    });

    it("disabling its client announces only the client's sessions still active", async () => {
      const admin = await signInAsAdmin(t);
      const client = await createTestClient(gql, admin.accessToken, { id: `expiring-${Date.now()}`, type: 'PUBLIC' });
      const { expiring, alive } = await expiringAndAlive(client.id);
      const other = await gql<{ login: Payload }>(LOGIN_MUTATION, {
        input: { email: (await registerUser(gql)).user.email, password: 'correct horse battery', clientId: client.id },
      });
      const live = other.data?.login as Payload;
      const adminNow = await signInAsAdmin(t);
      const { response, announced } = await revokedAcrossItsEnd(expiring, () =>
        gql(
          'mutation($id: ID!) { setClientDisabled(id: $id, disabled: true) { disabled } }',
          { id: client.id },
          { token: adminNow.accessToken },
        ),
      );
      expect(response.errors).toBeUndefined();
      expect(announced).toEqual([live.session.id]);
      expect(announced).not.toContain(alive.session.id);
      await stillUnrevoked(expiring.session.id);
    });

    it('a revocation asked for by the session that ends as it waits still revokes the others', async () => {
      const { expiring, alive } = await expiringAndAlive();
      // The expiring session's own access token, valid until the session's end.
      const asker = expiring;
      const { response, announced } = await revokedAcrossItsEnd(
        asker,
        () => gql('mutation { revokeOtherSessions }', {}, { token: asker.accessToken }),
        alive,
      );
      expect(response.errors).toBeUndefined();
      expect(response.data).toEqual({ revokeOtherSessions: 1 });
      expect(announced).toEqual([alive.session.id]);
      await stillUnrevoked(asker.session.id);
    });

    it("a refresh that waited on its row past the session's end, behind a revocation that left it out, does not extend it", async () => {
      const { expiring, alive } = await expiringAndAlive();
      const asker = await sortedAfter(expiring, alive);
      // Checked a minute before the session's end, then its UPDATE queues behind the revocation's lock.
      const { revocation, queued } = await queuedBehindARevocation(
        asker,
        () => refreshToken(gql, expiring.refreshToken),
        (holder, ended) => holder.waitingOn('update `sessions`%', ended),
      );
      expect(revocation.errors).toBeUndefined();
      expectUnauthenticated(queued, 'REFRESH_TOKEN_EXPIRED');
      const row = await (t.app.orm.em.fork() as Em).findOneOrFail(Session, { id: expiring.session.id });
      // Not extended, and not rotated: the token it presented is still the session's current one, and expired.
      expect(row.expiresAt.toISOString()).toBe(expiring.refreshTokenExpiresAt);
      expectUnauthenticated(await refreshToken(gql, expiring.refreshToken), 'REFRESH_TOKEN_EXPIRED');
    });

    it('a password change by a session that ended while it queued behind a revocation brings it back to nothing', async () => {
      const { expiring, alive } = await expiringAndAlive();
      const owner = await sortedAfter(expiring, alive);
      const others =
        (await (t.app.orm.em.fork() as Em).count(Session, { user: expiring.user.id, revokedAt: null })) - 2;
      const { revocation, queued } = await queuedBehindARevocation(
        owner,
        () =>
          gql(
            CHANGE_PASSWORD,
            { input: { currentPassword: PASSWORD, newPassword: 'a new password 1' } },
            { token: expiring.accessToken },
          ),
        // Its locking read of its own session, queued behind the revocation's.
        (holder, ended) =>
          eventually(async () => ended() || (await holder.running('select%from `sessions`%for update%')) >= 2),
      );
      // The user's other sessions (alive, and any opened by sortedAfter), not the one that ended.
      expect(revocation.data).toEqual({ revokeOtherSessions: others });
      expectUnauthenticated(queued, 'TOKEN_EXPIRED');
      // Nothing changed: the owner's session lives, the password is the old one, the ended session stays ended.
      await stillUnrevoked(owner.session.id);
      await stillUnrevoked(expiring.session.id);
      const row = await (t.app.orm.em.fork() as Em).findOneOrFail(Session, { id: expiring.session.id });
      expect(row.expiresAt.toISOString()).toBe(expiring.refreshTokenExpiresAt);
      expect((await loginUser(gql, expiring.user.email, PASSWORD)).data?.login).toBeTruthy();
    });
  },
);

describe.each(dialects())('a session used within the clock tolerance past its end, on %s', (dialect) => {
  let t: TestApp;
  const clock = new TestClock();
  const gql: Gql = (query, variables, options) => t.gql(query, variables, options);

  beforeAll(async () => {
    t = await startTestApp({ dialect, clock, env: SLIDING });
  });
  afterAll(() => t?.close());

  it('cannot change the password: TOKEN_EXPIRED, the session not brought back, the password unchanged', async () => {
    const user = await registerUser(gql, { password: PASSWORD });
    // Its access token ends with the session; it is still accepted 2 s later (the tolerance is 5 s).
    expect(decodeJwt(user.accessToken).exp).toBe(Math.floor(Date.parse(user.refreshTokenExpiresAt) / 1000));
    clock.advance(10 * MINUTE + 2_000);
    expect((await me(gql, user.accessToken)).data?.me).toEqual({ id: user.user.id });
    const change = await gql(
      CHANGE_PASSWORD,
      { input: { currentPassword: PASSWORD, newPassword: 'a new password 1' } },
      { token: user.accessToken },
    );
    expectUnauthenticated(change, 'TOKEN_EXPIRED');
    const row = await (t.app.orm.em.fork() as Em).findOneOrFail(Session, { id: user.session.id });
    expect(row.expiresAt.toISOString()).toBe(user.refreshTokenExpiresAt);
    expect((await loginUser(gql, user.user.email, PASSWORD)).data?.login).toBeTruthy();
  });

  it('revokeOtherSessions still revokes the others; revokeSession of itself is NOT_FOUND', async () => {
    const user = await registerUser(gql, { password: PASSWORD });
    clock.advance(5 * MINUTE);
    const other = (await loginUser(gql, user.user.email, PASSWORD)).data?.login as Payload;
    clock.advance(5 * MINUTE + 2_000);
    expect(errorCode(await revokeSession(gql, user.session.id, user.accessToken))).toBe('NOT_FOUND');
    const response = await gql('mutation { revokeOtherSessions }', {}, { token: user.accessToken });
    expect(response.data).toEqual({ revokeOtherSessions: 1 });
    const row = await (t.app.orm.em.fork() as Em).findOneOrFail(Session, { id: other.session.id });
    expect(row.revokedReason).toBe('REVOKED_BY_USER');
  });
});
