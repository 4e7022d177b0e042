// API scopes granted to users (setUserScopes, User.scopes): names checked, stored sorted, carried by a user's tokens
// only for clients that declare them (at the next refresh or sign-in), removal ending the user's sessions at once
// (REVOKED_BY_ADMIN), and the same field rules through federation's _entities. On SQLite and MariaDB.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { verifiedClaims } from './support/claims.ts';
import { createTestClient } from './support/client-credentials.ts';
import { expectUnauthenticated } from './support/expect.ts';
import {
  extensionsOf,
  type Gql,
  me,
  PAYLOAD,
  type Payload,
  refreshToken,
  registerUser,
  signIn,
} from './support/graphql.ts';
import { subscribe } from './support/subscriptions.ts';

const SET_SCOPES = 'mutation($id: ID!, $s: [String!]!) { setUserScopes(userId: $id, scopes: $s) { id scopes } }';
const USER_SCOPES = 'query($id: ID!) { user(id: $id) { id scopes } }';
const LOGIN = `mutation($input: LoginInput!) { login(input: $input) { ${PAYLOAD} } }`;
const ENTITIES = 'query($reps: [_Any!]!) { _entities(representations: $reps) { ... on User { id scopes } } }';
const SUBSCRIPTION = 'subscription { sessionRevoked { sessionId reason } }';
const ROLE_SCOPES = 'profile:read profile:write sessions:read sessions:write';

const loginWith = async (gql: Gql, email: string, password: string, clientId: string) => {
  const response = await gql<{ login: Payload }>(LOGIN, { input: { email, password, clientId } });
  if (!response.data?.login) throw new Error(`login failed: ${JSON.stringify(response.errors)}`);
  return response.data.login;
};

describe.each(dialects())('API scopes on %s', (dialect) => {
  let t: TestApp;
  let admin: Payload;
  const em = () => t.app.orm.em.fork() as Em;
  const setScopes = (userId: string, scopes: string[], token = admin.accessToken) =>
    t.gql<{ setUserScopes: { id: string; scopes: string[] } }>(SET_SCOPES, { id: userId, s: scopes }, { token });
  const scopeOf = async (token: string) => String((await verifiedClaims(t.url, token)).scope);

  beforeAll(async () => {
    t = await startTestApp({ dialect });
    admin = await signInAsAdmin(t);
    // storage-app declares storage.read only; photos-app declares nothing.
    await createTestClient(t.gql, admin.accessToken, { id: 'storage-app', type: 'PUBLIC', scopes: ['storage.read'] });
    await createTestClient(t.gql, admin.accessToken, { id: 'photos-app', type: 'PUBLIC' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('answers AUTHENTICATION_REQUIRED anonymously, FORBIDDEN without users:write, NOT_FOUND for an unknown user', async () => {
    const user = await registerUser(t.gql);
    expectUnauthenticated(
      await t.gql(SET_SCOPES, { id: user.user.id, s: ['storage.read'] }),
      'AUTHENTICATION_REQUIRED',
    );
    expect(extensionsOf(await setScopes(user.user.id, ['storage.read'], user.accessToken))).toEqual({
      code: 'FORBIDDEN',
    });
    expect(extensionsOf(await setScopes(randomUUID(), ['storage.read']))).toEqual({ code: 'NOT_FOUND' });
    expect((await me<{ scopes: string[] }>(t.gql, user.accessToken, 'scopes')).data).toEqual({ me: { scopes: [] } });
  });

  it('refuses names that are not API scopes (BAD_USER_INPUT, field scopes) and changes nothing', async () => {
    const user = await registerUser(t.gql);
    await setScopes(user.user.id, ['storage.read']);
    for (const bad of [
      ['users:read'],
      ['clients:admin'],
      ['sessions:feed'],
      ['profile:read'],
      [''],
      ['Storage.read'],
      ['1storage'],
      ['storage read'],
      ['storage.read', 'x'.repeat(65)],
      Array.from({ length: 40 }, (_, i) => `scope-number-${i}-${'x'.repeat(50)}`),
    ]) {
      const response = await setScopes(user.user.id, bad);
      expect(extensionsOf(response), JSON.stringify(bad)).toEqual({ code: 'BAD_USER_INPUT', field: 'scopes' });
      expect(response.data ?? null).toBeNull();
    }
    expect((await t.gql(USER_SCOPES, { id: user.user.id }, { token: admin.accessToken })).data).toEqual({
      user: { id: user.user.id, scopes: ['storage.read'] },
    });
  });

  it('stores the scopes sorted without repeats; the user and users:read see them, nobody else', async () => {
    const user = await registerUser(t.gql);
    const other = await registerUser(t.gql);
    // Read once first, so that a cached copy of the row would show if it were kept.
    expect((await me<{ scopes: string[] }>(t.gql, user.accessToken, 'scopes')).data).toEqual({ me: { scopes: [] } });
    const set = await setScopes(user.user.id, ['storage.write', 'storage.read', 'storage.write', 'a_b.c:d-e']);
    expect(set.data).toEqual({
      setUserScopes: { id: user.user.id, scopes: ['a_b.c:d-e', 'storage.read', 'storage.write'] },
    });
    // Adding revokes nothing, and `me` is current at once.
    expect((await me<{ scopes: string[] }>(t.gql, user.accessToken, 'scopes')).data).toEqual({
      me: { scopes: ['a_b.c:d-e', 'storage.read', 'storage.write'] },
    });
    expect((await t.gql(USER_SCOPES, { id: user.user.id }, { token: admin.accessToken })).data).toEqual({
      user: { id: user.user.id, scopes: ['a_b.c:d-e', 'storage.read', 'storage.write'] },
    });
    const events = await em().find(AuditEvent, { type: 'USER_SCOPES_CHANGED', userId: user.user.id });
    expect(events.map((event) => JSON.parse(event.detail ?? '{}'))).toEqual([
      { by: admin.user.id, from: '', to: 'a_b.c:d-e storage.read storage.write' },
    ]);

    // Federation applies the same rules to the entity's field as user(id) and me do.
    const reps = [{ __typename: 'User', id: user.user.id }];
    expect((await t.gql(ENTITIES, { reps }, { token: user.accessToken })).data).toEqual({
      _entities: [{ id: user.user.id, scopes: ['a_b.c:d-e', 'storage.read', 'storage.write'] }],
    });
    expect((await t.gql(ENTITIES, { reps }, { token: admin.accessToken })).data).toEqual({
      _entities: [{ id: user.user.id, scopes: ['a_b.c:d-e', 'storage.read', 'storage.write'] }],
    });
    const foreign = await t.gql(ENTITIES, { reps }, { token: other.accessToken });
    expect(foreign.errors?.map((error) => error.extensions?.code)).toEqual(['FORBIDDEN']);
    expect(JSON.stringify(foreign.data)).not.toContain('storage');
    const anonymous = await t.gql(ENTITIES, { reps });
    expect(anonymous.errors?.map((error) => error.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    expect(JSON.stringify(anonymous.data)).not.toContain('storage');
  });

  it("carries a granted scope only in tokens of clients that declare it, from the session's next refresh", async () => {
    const user = await registerUser(t.gql);
    const before = await loginWith(t.gql, user.user.email, user.password, 'storage-app');
    expect(await scopeOf(before.accessToken)).toBe(ROLE_SCOPES);

    await setScopes(user.user.id, ['storage.read', 'storage.write']);
    // The session opened before the grant goes on, and gets the scope at its next refresh.
    expect((await me(t.gql, before.accessToken)).data).toEqual({ me: { id: user.user.id } });
    const refreshed = (await refreshToken(t.gql, before.refreshToken)).data?.refresh as Payload;
    const claims = await verifiedClaims(t.url, refreshed.accessToken);
    expect([claims.client_id, claims.scope]).toEqual(['storage-app', `${ROLE_SCOPES} storage.read`]);
    // A new sign-in through that client carries it too; storage.write, which no client declares, never appears.
    const fresh = await loginWith(t.gql, user.user.email, user.password, 'storage-app');
    expect(await scopeOf(fresh.accessToken)).toBe(`${ROLE_SCOPES} storage.read`);
    // Clients that do not declare it never carry it.
    const photos = await loginWith(t.gql, user.user.email, user.password, 'photos-app');
    expect(await scopeOf(photos.accessToken)).toBe(ROLE_SCOPES);
    const plain = await signIn(t.gql, user.user.email, user.password);
    expect(await scopeOf(plain.accessToken)).toBe(ROLE_SCOPES);
    const photosRefreshed = (await refreshToken(t.gql, photos.refreshToken)).data?.refresh as Payload;
    expect(await scopeOf(photosRefreshed.accessToken)).toBe(ROLE_SCOPES);
  });

  it('removing a scope ends every session of the user at once (REVOKED_BY_ADMIN); a token after it lacks the scope', async () => {
    const user = await registerUser(t.gql);
    await setScopes(user.user.id, ['storage.read', 'storage.write']);
    const app = await loginWith(t.gql, user.user.email, user.password, 'storage-app');
    const plain = await signIn(t.gql, user.user.email, user.password);
    const subscription = subscribe<{ sessionRevoked: { sessionId: string; reason: string } }>(
      t.url,
      SUBSCRIPTION,
      plain.accessToken,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));

    // storage.write is declared by no client, but removing it still ends the sessions: the rule is per user.
    const set = await setScopes(user.user.id, ['storage.read']);
    expect(set.data).toEqual({ setUserScopes: { id: user.user.id, scopes: ['storage.read'] } });
    const events = [await subscription.next(1), await subscription.next(2), await subscription.next(3)]
      .map((event) => event.sessionRevoked)
      .sort((a, b) => a.sessionId.localeCompare(b.sessionId));
    expect(events).toEqual(
      [user.session.id, app.session.id, plain.session.id]
        .sort()
        .map((sessionId) => ({ sessionId, reason: 'REVOKED_BY_ADMIN' })),
    );
    await subscription.dispose();
    for (const token of [user.accessToken, app.accessToken, plain.accessToken]) {
      expectUnauthenticated(await me(t.gql, token), 'SESSION_REVOKED');
    }
    expect(extensionsOf(await refreshToken(t.gql, app.refreshToken))).toEqual({
      code: 'UNAUTHENTICATED',
      reason: 'SESSION_REVOKED',
    });
    const again = await loginWith(t.gql, user.user.email, user.password, 'storage-app');
    expect(await scopeOf(again.accessToken)).toBe(`${ROLE_SCOPES} storage.read`);

    // Setting the same scopes again, or adding one, revokes nothing.
    await setScopes(user.user.id, ['storage.read']);
    await setScopes(user.user.id, ['storage.read', 'storage.write']);
    expect((await me(t.gql, again.accessToken)).data).toEqual({ me: { id: user.user.id } });
    await setScopes(user.user.id, []);
    expectUnauthenticated(await me(t.gql, again.accessToken), 'SESSION_REVOKED');
    expect((await t.gql(USER_SCOPES, { id: user.user.id }, { token: admin.accessToken })).data).toEqual({
      user: { id: user.user.id, scopes: [] },
    });
  });
});
