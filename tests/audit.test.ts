// The audit trail through GraphQL: every security event is a row with user, session, IP, user agent and time;
// admins read all of it (users:read), users their own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { errorCode, loginUser, type Payload, refreshToken, registerUser } from './support/graphql.ts';

const EVENT = 'id type userId sessionId ipAddress userAgent detail createdAt';

describe('audit events', () => {
  let t: TestApp;
  let admin: Payload;
  let user: Payload & { password: string };

  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_LOGIN_ACCOUNT: '2/15m' } });
    const registered = await registerUser(t.gql);
    await (t.app.orm.em.fork() as Em).nativeUpdate(User, { id: registered.user.id }, { roles: 'USER,ADMIN' });
    admin = (await loginUser(t.gql, registered.user.email, registered.password)).data?.login as Payload;
    user = await registerUser(t.gql);
    const headers = { 'user-agent': 'audit-test/1.0' };
    await loginUser(t.gql, user.user.email, 'wrong password', headers);
    await loginUser(t.gql, user.user.email, 'wrong password', headers);
    await loginUser(t.gql, user.user.email, user.password, headers);
    await refreshToken(t.gql, user.refreshToken);
    await t.gql('mutation { logout }', {}, { token: user.accessToken });
  });
  afterAll(() => t?.close());

  it('lets users read their own events, newest first, with who, where and when', async () => {
    const response = await t.gql(
      `{ me { auditEvents(first: 10) { edges { cursor node { ${EVENT} } } pageInfo { hasNextPage endCursor } } } }`,
      {},
      { token: admin.accessToken },
    );
    expect(response.errors).toBeUndefined();
    const own = await t.gql(`{ me { auditEvents { edges { node { ${EVENT} } } } } }`, {}, { token: user.accessToken });
    // logout revoked the token's session: the user signs in again to look.
    expect(errorCode(own)).toBe('UNAUTHENTICATED');
    const events = (
      await t.gql(
        `query($id: ID!) { user(id: $id) { auditEvents(first: 10) { edges { node { ${EVENT} } } } } }`,
        { id: user.user.id },
        { token: admin.accessToken },
      )
    ).data?.user.auditEvents.edges.map((edge: { node: Record<string, unknown> }) => edge.node);
    expect(events.map((event: { type: string }) => event.type)).toEqual([
      'SESSION_REVOKED',
      'TOKEN_REFRESHED',
      'LOCKOUT',
      'LOGIN_FAILED',
      'LOGIN_FAILED',
      'USER_REGISTERED',
    ]);
    expect(events[0]).toMatchObject({
      userId: user.user.id,
      sessionId: user.session.id,
      ipAddress: '127.0.0.1',
      detail: { reason: 'LOGOUT' },
    });
    expect(events[3]).toMatchObject({
      userAgent: 'audit-test/1.0',
      detail: { reason: 'WRONG_PASSWORD' },
      sessionId: null,
    });
    expect(events[2].detail).toMatchObject({ scope: 'account', lockouts: 1 });
    expect(Number.isNaN(Date.parse(events[0].createdAt))).toBe(false);
  });

  it('lets admins read everything, filtered by type and user, page by page', async () => {
    const page = (after?: string) =>
      t.gql(
        `query($after: String) { auditEvents(first: 2, after: $after, type: LOGIN_FAILED) {
           edges { cursor node { type userId } } pageInfo { hasNextPage endCursor } } }`,
        { after },
        { token: admin.accessToken },
      );
    const first = (await page()).data?.auditEvents;
    expect(first.edges).toHaveLength(2);
    expect(first.pageInfo.hasNextPage).toBe(false);
    expect(first.edges.every((e: { node: { type: string } }) => e.node.type === 'LOGIN_FAILED')).toBe(true);
    const all = await t.gql(
      `query($u: ID!) { auditEvents(first: 1, userId: $u) { edges { cursor node { id type } } pageInfo { endCursor hasNextPage } } }`,
      { u: user.user.id },
      { token: admin.accessToken },
    );
    const next = await t.gql(
      `query($u: ID!, $after: String) { auditEvents(first: 1, userId: $u, after: $after) { edges { node { id type } } } }`,
      { u: user.user.id, after: all.data?.auditEvents.pageInfo.endCursor },
      { token: admin.accessToken },
    );
    expect(all.data?.auditEvents.edges[0].node.type).toBe('SESSION_REVOKED');
    expect(next.data?.auditEvents.edges[0].node.type).toBe('TOKEN_REFRESHED');
    const bad = await t.gql(
      '{ auditEvents(after: "nonsense") { edges { cursor } } }',
      {},
      { token: admin.accessToken },
    );
    expect(bad.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
  });

  it("refuses the trail to anyone without users:read, and another user's events to a user", async () => {
    const other = await registerUser(t.gql);
    expect(errorCode(await t.gql('{ auditEvents { edges { cursor } } }', {}, { token: other.accessToken }))).toBe(
      'FORBIDDEN',
    );
    expect(errorCode(await t.gql('{ auditEvents { edges { cursor } } }'))).toBe('UNAUTHENTICATED');
    const mine = await t.gql(
      '{ me { auditEvents { edges { node { type userId } } } } }',
      {},
      { token: other.accessToken },
    );
    expect(mine.data?.me.auditEvents.edges).toEqual([{ node: { type: 'USER_REGISTERED', userId: other.user.id } }]);
  });
});
