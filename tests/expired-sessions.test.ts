// A session whose refresh token has expired is over: not listed, not counted or announced by the bulk
// revocations, NOT_FOUND for revokeSession; and no access token of a session outlives its refresh token.
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import type { SessionRevokedEvent } from '../src/events/revocation-bus.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { TestClock } from './support/clock.ts';
import {
  errorCode,
  type Gql,
  loginUser,
  type Payload,
  refreshToken,
  registerUser,
  revokeSession,
} from './support/graphql.ts';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

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
