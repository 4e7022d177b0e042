// The admin surface: bootstrap CLI, user lookup and search with pagination, roles, ending a user's sessions.
import { randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import {
  errorCode,
  type Gql,
  type GraphQLResponse,
  loginUser,
  type Payload,
  refreshToken,
  registerUser,
} from './support/graphql.ts';
import { runAdminCli } from './support/processes.ts';

describe.each(dialects())('admin on %s', (dialect) => {
  let t: TestApp;
  let admin: Payload;
  const em = () => t.app.orm.em.fork() as Em;
  const gql: Gql = (query, variables, options) => t.gql(query, variables, options);

  beforeAll(async () => {
    t = await startTestApp({ dialect });
    const email = `root-${randomUUID().slice(0, 8)}@example.com`;
    const created = await runAdminCli(
      ['create-admin', email],
      { DATABASE_URL: t.databaseUrl, DATA_DIR: t.dir },
      'admin password 1\n',
    );
    expect(created).toMatchObject({ code: 0, out: `created admin ${email}` });
    admin = (await loginUser(gql, email, 'admin password 1')).data?.login as Payload;
  });
  afterAll(() => t?.close());

  it('bootstraps an admin from the CLI whose token carries the admin scopes', () => {
    expect(admin.user.roles).toEqual(['USER', 'ADMIN']);
    const claims = decodeJwt(admin.accessToken);
    expect(claims.roles).toEqual(['USER', 'ADMIN']);
    expect(claims.scope).toBe(
      'profile:read profile:write sessions:read sessions:write users:read users:write sessions:admin clients:admin',
    );
  });

  it('promotes an existing account from the CLI, and says so when it is one already', async () => {
    const user = await registerUser(gql);
    const env = { DATABASE_URL: t.databaseUrl, DATA_DIR: t.dir };
    expect(await runAdminCli(['create-admin', user.user.email], env)).toMatchObject({ code: 0 });
    expect((await em().findOneOrFail(User, { id: user.user.id })).roles).toBe('USER,ADMIN');
    expect((await runAdminCli(['create-admin', user.user.email], env)).out).toBe(
      `${user.user.email} is already an admin`,
    );
    expect((await runAdminCli(['make-admin'], env)).code).toBe(2);
    await gql(
      'mutation($id: ID!, $roles: [Role!]!) { setUserRoles(userId: $id, roles: $roles) { id } }',
      {
        id: user.user.id,
        roles: ['USER'],
      },
      { token: admin.accessToken },
    );
  });

  it("lets an admin read another user's email and sessions by id, and nobody else", async () => {
    const user = await registerUser(gql);
    const query = 'query($id: ID!) { user(id: $id) { id email sessions { id current } } }';
    const asAdmin = await gql(query, { id: user.user.id }, { token: admin.accessToken });
    expect(asAdmin.data?.user).toEqual({
      id: user.user.id,
      email: user.user.email,
      sessions: [{ id: user.session.id, current: false }],
    });
    const other = await registerUser(gql);
    expect(errorCode(await gql(query, { id: user.user.id }, { token: other.accessToken }))).toBe('FORBIDDEN');
    expect(errorCode(await gql(query, { id: user.user.id }))).toBe('UNAUTHENTICATED');
    expect((await gql(query, { id: randomUUID() }, { token: admin.accessToken })).data).toEqual({ user: null });
  });

  it('pages through users with cursors, searches by email or display name, and counts the matches', async () => {
    const tag = randomUUID().slice(0, 8);
    const made: string[] = [];
    for (let i = 0; i < 5; i++) {
      made.push(
        (await registerUser(gql, { email: `page-${tag}-${i}@example.com`, displayName: `Pager ${i}` })).user.id,
      );
    }
    await registerUser(gql, { email: `someone-${randomUUID().slice(0, 8)}@example.com`, displayName: `Finder ${tag}` });
    const query = `query($first: Int, $after: String, $query: String) {
      users(first: $first, after: $after, query: $query) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id email } } }
    }`;
    const seen: string[] = [];
    let after: string | null = null;
    for (const expected of [2, 2, 1]) {
      const page: GraphQLResponse = await gql(
        query,
        { first: 2, after, query: `page-${tag}` },
        { token: admin.accessToken },
      );
      const users: any = page.data?.users;
      expect(users.totalCount).toBe(5);
      expect(users.edges).toHaveLength(expected);
      expect(users.pageInfo.hasNextPage).toBe(seen.length + expected < 5);
      expect(users.pageInfo.endCursor).toBe(users.edges.at(-1).cursor);
      seen.push(...users.edges.map((e: { node: { id: string } }) => e.node.id));
      after = users.pageInfo.endCursor;
    }
    expect(seen).toEqual(made);
    const byName = await gql(query, { query: `finder ${tag}` }, { token: admin.accessToken });
    expect(byName.data?.users.totalCount).toBe(1);
    const wildcard = await gql(query, { query: '%' }, { token: admin.accessToken });
    expect(wildcard.data?.users.totalCount).toBe(0);
  });

  it('searches for the text as typed: % and _ are characters, not wildcards, and case does not matter', async () => {
    const tag = randomUUID().slice(0, 8);
    const percent = await registerUser(gql, { displayName: `Sale 50% ${tag}` });
    await registerUser(gql, { displayName: `Sale 500 ${tag}` });
    const query = 'query($query: String) { users(query: $query) { totalCount edges { node { id } } } }';
    const found = await gql(query, { query: `SALE 50% ${tag}` }, { token: admin.accessToken });
    expect(found.data?.users).toEqual({ totalCount: 1, edges: [{ node: { id: percent.user.id } }] });
    const underscore = await gql(query, { query: `sale 50_ ${tag}` }, { token: admin.accessToken });
    expect(underscore.data?.users.totalCount).toBe(0);
  });

  it('refuses a page over 100, a cursor it did not make, and callers without users:read', async () => {
    const query = 'query($first: Int, $after: String) { users(first: $first, after: $after) { totalCount } }';
    const tooMany = await gql(query, { first: 101 }, { token: admin.accessToken });
    expect(tooMany.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
    const badCursor = await gql(query, { after: 'not-a-cursor' }, { token: admin.accessToken });
    expect(badCursor.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
    const user = await registerUser(gql);
    expect(errorCode(await gql(query, {}, { token: user.accessToken }))).toBe('FORBIDDEN');
  });

  it('grants a role that arrives with the next refresh, and withdraws one at once by ending the sessions', async () => {
    const user = await registerUser(gql);
    const set = 'mutation($id: ID!, $roles: [Role!]!) { setUserRoles(userId: $id, roles: $roles) { id roles } }';
    const granted = await gql(set, { id: user.user.id, roles: ['ADMIN'] }, { token: admin.accessToken });
    expect(granted.data?.setUserRoles).toEqual({ id: user.user.id, roles: ['USER', 'ADMIN'] });
    const refreshed = (await refreshToken(gql, user.refreshToken)).data?.refresh as Payload;
    expect(decodeJwt(refreshed.accessToken).roles).toEqual(['USER', 'ADMIN']);

    const withdrawn = await gql(set, { id: user.user.id, roles: ['USER'] }, { token: admin.accessToken });
    expect(withdrawn.data?.setUserRoles.roles).toEqual(['USER']);
    expect(errorCode(await gql('{ me { id } }', {}, { token: refreshed.accessToken }))).toBe('UNAUTHENTICATED');
    const audit = await em().find(AuditEvent, { userId: user.user.id, type: 'ROLES_CHANGED' });
    expect(audit.map((row) => JSON.parse(row.detail ?? '{}').to)).toEqual(['USER,ADMIN', 'USER']);
    expect(audit.every((row) => JSON.parse(row.detail ?? '{}').by === admin.user.id)).toBe(true);
  });

  it('does not let the last admin lose ADMIN, nor a non-admin change roles', async () => {
    const set = 'mutation($id: ID!, $roles: [Role!]!) { setUserRoles(userId: $id, roles: $roles) { id } }';
    // Make sure this admin is the only one left.
    await em().nativeUpdate(User, { id: { $ne: admin.user.id }, roles: { $like: '%ADMIN%' } }, { roles: 'USER' });
    const refused = await gql(set, { id: admin.user.id, roles: ['USER'] }, { token: admin.accessToken });
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'roles' });
    expect((await em().findOneOrFail(User, { id: admin.user.id })).roles).toBe('USER,ADMIN');
    const user = await registerUser(gql);
    expect(errorCode(await gql(set, { id: user.user.id, roles: ['ADMIN'] }, { token: user.accessToken }))).toBe(
      'FORBIDDEN',
    );
    expect(errorCode(await gql(set, { id: randomUUID(), roles: ['USER'] }, { token: admin.accessToken }))).toBe(
      'NOT_FOUND',
    );
  });

  it("ends every session of a user and counts them; the user's tokens stop working at once", async () => {
    const user = await registerUser(gql);
    const second = (await loginUser(gql, user.user.email, user.password)).data?.login as Payload;
    const revoke = 'mutation($id: ID!) { revokeUserSessions(userId: $id) }';
    expect((await gql(revoke, { id: user.user.id }, { token: admin.accessToken })).data).toEqual({
      revokeUserSessions: 2,
    });
    for (const token of [user.accessToken, second.accessToken]) {
      expect(errorCode(await gql('{ me { id } }', {}, { token }))).toBe('UNAUTHENTICATED');
    }
    expect(errorCode(await refreshToken(gql, second.refreshToken))).toBe('UNAUTHENTICATED');
    expect((await gql(revoke, { id: user.user.id }, { token: admin.accessToken })).data).toEqual({
      revokeUserSessions: 0,
    });
    expect(errorCode(await gql(revoke, { id: randomUUID() }, { token: admin.accessToken }))).toBe('NOT_FOUND');
    const other = await registerUser(gql);
    expect(errorCode(await gql(revoke, { id: user.user.id }, { token: other.accessToken }))).toBe('FORBIDDEN');
  });
});
