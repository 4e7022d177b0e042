// Client changes racing the requests they govern, with real concurrency on SQLite and MariaDB, two instances
// sharing Redis and one database: sign-ins racing setClientDisabled (issued on another instance) and setUserScopes,
// token requests racing rotateClientSecret, and concurrent updateClient calls converging on every registry copy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Session } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, type TestApp } from './support/app.ts';
import { verifiedClaims } from './support/claims.ts';
import { createTestClient, requestToken } from './support/client-credentials.ts';
import { expectUnauthenticated } from './support/expect.ts';
import { type Gql, PAYLOAD, type Payload, registerUser } from './support/graphql.ts';
import { type InstancePair, startInstancePair } from './support/instances.ts';
import { serviceAvailable, servicesRequired } from './support/services.ts';
import { eventually } from './support/subscriptions.ts';

const IN_FLIGHT = 30;
/** Per round, the time between two requests' starts: the interloper lands early, midway or late in their work. */
const STAGGER_MS = [2, 5, 10];
const LOGIN = `mutation($input: LoginInput!) { login(input: $input) { ${PAYLOAD} } }`;
const SET_DISABLED = 'mutation($id: ID!, $d: Boolean!) { setClientDisabled(id: $id, disabled: $d) { id disabled } }';
const SET_SCOPES = 'mutation($u: ID!, $s: [String!]!) { setUserScopes(userId: $u, scopes: $s) { id scopes } }';
const ROTATE = 'mutation($id: ID!) { rotateClientSecret(id: $id) { client { id } clientSecret } }';
const UPDATE =
  'mutation($id: ID!, $input: UpdateClientInput!) { updateClient(id: $id, input: $input) { id name scopes } }';
const CLIENT_VIEW = 'id name type audiences redirectUris allowedOrigins scopes disabled createdAt';
const CLIENT = `query($id: ID!) { client(id: $id) { ${CLIENT_VIEW} } }`;
const SERVICE_QUERY = '{ users(first: 1) { edges { node { id } } } }';

/**
 * Starts `count` requests `staggerMs` apart, and `interloper` halfway through them, and waits for all of them: some
 * requests end before the interloper starts, some start after it answered, and some overlap it.
 */
async function race<T, U>(
  count: number,
  request: (i: number) => Promise<T>,
  interloper: () => Promise<U>,
  staggerMs = 2,
) {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const requests = Array.from({ length: count }, (_, i) => sleep(i * staggerMs).then(() => request(i)));
  await sleep((count * staggerMs) / 2);
  const intruded = await interloper();
  return { results: await Promise.all(requests), intruded };
}

describe.skipIf(!serviceAvailable('redis-server') && !servicesRequired).each(dialects())(
  'client races on %s (two instances, one database, shared Redis)',
  (dialect) => {
    let pair: InstancePair;
    let one: TestApp;
    let two: TestApp;
    let admin: Payload;
    const em = () => one.app.orm.em.fork() as Em;
    const asAdmin = (gql: Gql, query: string, variables: Record<string, unknown>) =>
      gql(query, variables, { token: admin.accessToken });

    beforeAll(async () => {
      pair = await startInstancePair(dialect);
      ({ one, two } = pair);
      admin = await signInAsAdmin(one);
    });
    afterAll(() => pair?.close());

    it('sign-ins on instance 2 racing setClientDisabled on instance 1 leave no active session and no working token', async () => {
      for (let round = 0; round < STAGGER_MS.length; round += 1) {
        const id = `race-disable-${dialect}-${round}`;
        await createTestClient(one.gql, admin.accessToken, { id, type: 'PUBLIC' });
        const user = await registerUser(one.gql);
        await eventually(() => two.app.services.clients.get(id) !== undefined);
        const { results, intruded } = await race(
          IN_FLIGHT,
          () =>
            two.gql<{ login: Payload }>(LOGIN, {
              input: { email: user.user.email, password: user.password, clientId: id },
            }),
          () => asAdmin(one.gql, SET_DISABLED, { id, d: true }),
          STAGGER_MS[round],
        );
        expect(intruded.errors, JSON.stringify(intruded.errors)).toBeUndefined();
        for (const result of results) {
          if (result.errors) {
            // Refused as a sign-in for a disabled client, or its token refused as it was issued.
            expect(
              [
                JSON.stringify({ code: 'BAD_USER_INPUT', field: 'clientId' }),
                '{"code":"UNAUTHENTICATED","reason":"CLIENT_DISABLED"}',
              ],
              JSON.stringify(result.errors),
            ).toContain(JSON.stringify(result.errors[0]?.extensions));
          }
        }
        const active = await em().count(Session, { clientId: id, revokedAt: null });
        expect(active).toBe(0);
        await eventually(() => two.app.services.clients.get(id)?.disabled === true);
        for (const result of results) {
          const login = result.data?.login;
          if (!login) continue;
          for (const app of [one, two]) {
            const answer = await app.gql('{ me { id } }', {}, { token: login.accessToken });
            // Its session revoked (checked first), or its client disabled: refused either way.
            expect(answer.errors).toHaveLength(1);
            expect(['SESSION_REVOKED', 'CLIENT_DISABLED']).toContain(answer.errors?.[0]?.extensions?.reason);
            expect(answer.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
            expect(answer.data?.me ?? null).toBeNull();
          }
        }
      }
    });

    it('sign-ins racing setUserScopes removing storage.read: no live session keeps a token with storage.read', async () => {
      const id = `race-scopes-${dialect}`;
      await createTestClient(one.gql, admin.accessToken, { id, type: 'PUBLIC', scopes: ['storage.read'] });
      await eventually(() => two.app.services.clients.get(id) !== undefined);
      for (let round = 0; round < STAGGER_MS.length; round += 1) {
        const user = await registerUser(one.gql);
        const granted = await asAdmin(one.gql, SET_SCOPES, { u: user.user.id, s: ['storage.read'] });
        expect(granted.errors).toBeUndefined();
        const { results, intruded } = await race(
          IN_FLIGHT,
          (i) =>
            (i % 2 === 0 ? one : two).gql<{ login: Payload }>(LOGIN, {
              input: { email: user.user.email, password: user.password, clientId: id },
            }),
          () => asAdmin(one.gql, SET_SCOPES, { u: user.user.id, s: [] }),
          STAGGER_MS[round],
        );
        expect(intruded.errors, JSON.stringify(intruded.errors)).toBeUndefined();
        for (const result of results) {
          expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
          const login = result.data?.login as Payload;
          const claims = await verifiedClaims(one.url, login.accessToken);
          const scopes = String(claims.scope).split(' ');
          const session = await em().findOneOrFail(Session, { id: login.session.id }, { disableIdentityMap: true });
          if (session.revokedAt === null || session.revokedAt === undefined) {
            expect(scopes, `session ${login.session.id} is live`).not.toContain('storage.read');
          } else {
            expect(session.revokedReason).toBe('REVOKED_BY_ADMIN');
            expectUnauthenticated(await two.gql('{ me { id } }', {}, { token: login.accessToken }), 'SESSION_REVOKED');
          }
        }
      }
    });

    it('token requests with the old secret racing rotateClientSecret: every token issued is refused once it answered', async () => {
      for (let round = 0; round < STAGGER_MS.length; round += 1) {
        const client = await createTestClient(one.gql, admin.accessToken, {
          id: `race-rotate-${dialect}-${round}`,
          scopes: ['users:read'],
        });
        await eventually(() => two.app.services.clients.get(client.id) !== undefined);
        const { results, intruded } = await race(
          IN_FLIGHT,
          (i) => requestToken((i % 2 === 0 ? one : two).url, { clientId: client.id, secret: client.secret ?? '' }),
          () => asAdmin(one.gql, ROTATE, { id: client.id }),
          STAGGER_MS[round],
        );
        expect(intruded.errors, JSON.stringify(intruded.errors)).toBeUndefined();
        for (const result of results) {
          if (result.status !== 200) {
            expect({ status: result.status, body: result.body }).toEqual({
              status: 401,
              body: { error: 'invalid_client', error_description: 'Client authentication failed' },
            });
          }
        }
        const issued = results.filter((result) => result.status === 200);
        // The rotation's response is out: instance 1 refuses at once, instance 2 once Redis told it.
        for (const result of issued) {
          expectUnauthenticated(
            await one.gql(SERVICE_QUERY, {}, { token: result.body.access_token as string }),
            'CLIENT_DISABLED',
          );
        }
        await eventually(() => two.app.services.clients.get(client.id)?.tokensRevokedAt != null);
        for (const result of issued) {
          expectUnauthenticated(
            await two.gql(SERVICE_QUERY, {}, { token: result.body.access_token as string }),
            'CLIENT_DISABLED',
          );
        }
        // And the old secret gets nothing more.
        expect((await requestToken(two.url, { clientId: client.id, secret: client.secret ?? '' })).status).toBe(401);
      }
    });

    it('concurrent updateClient calls on both instances: each registry copy ends equal to the database row', async () => {
      const id = `race-update-${dialect}`;
      await createTestClient(one.gql, admin.accessToken, { id, type: 'PUBLIC' });
      await eventually(() => two.app.services.clients.get(id) !== undefined);
      const answers = await Promise.all(
        Array.from({ length: IN_FLIGHT }, (_, i) =>
          asAdmin(i % 2 === 0 ? one.gql : two.gql, UPDATE, {
            id,
            input: { name: `name ${i}`, scopes: [`api.s${i}`], audiences: [`https://api${i}.test`] },
          }),
        ),
      );
      for (const answer of answers) expect(answer.errors, JSON.stringify(answer.errors)).toBeUndefined();
      const row = await em().findOneOrFail(Client, { id }, { disableIdentityMap: true });
      const expected = {
        id,
        name: row.name,
        type: 'PUBLIC',
        audiences: JSON.parse(row.audiences),
        redirectUris: [],
        allowedOrigins: [],
        scopes: JSON.parse(row.scopes),
        disabled: false,
        createdAt: row.createdAt.toISOString(),
      };
      // One writer's whole state, not a mix of two.
      const i = Number(row.name.slice('name '.length));
      expect(expected.scopes).toEqual([`api.s${i}`]);
      expect(expected.audiences).toEqual([`https://api${i}.test`]);
      for (const app of [one, two]) {
        await eventually(async () => {
          const view = await asAdmin(app.gql, CLIENT, { id });
          return JSON.stringify(view.data?.client) === JSON.stringify(expected);
        });
        expect(app.app.services.clients.get(id)?.updatedAt).toBe(row.updatedAt.getTime());
      }
    });
  },
);
