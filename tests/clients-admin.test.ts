// The admin API over clients (API.md "Clients"): who may use it, secrets shown once and stored hashed, every input
// rule with the field it names, a race for one id, rotation and disabling refusing the client's tokens at once
// (disabling also ends its sessions, CLIENT_DISABLED), on SQLite and MariaDB; and across two instances sharing Redis.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { AuditEvent, Client } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { createAccessTokenSigner } from '../src/tokens/sign.ts';
import { signInAsAdmin } from './support/admin.ts';
import { databaseUrl, dialects, startTestApp, type TestApp } from './support/app.ts';
import { verifiedClaims } from './support/claims.ts';
import { ed25519Pem, expectUnauthenticated } from './support/expect.ts';
import {
  extensionsOf,
  type Gql,
  graphqlClient,
  me,
  PAYLOAD,
  type Payload,
  refreshToken,
  registerUser,
  signIn,
} from './support/graphql.ts';
import { runAdminCli, type ServiceProcess, startServiceProcess } from './support/processes.ts';
import { type RunningService, serviceAvailable, servicesRequired, startRedis } from './support/services.ts';
import { eventually, subscribe } from './support/subscriptions.ts';

const AUDIENCE = 'https://api.test';
const CLIENT_FIELDS = 'id name type audiences redirectUris allowedOrigins scopes disabled createdAt';
const CLIENTS = `{ clients { ${CLIENT_FIELDS} } }`;
const CLIENT = `query($id: ID!) { client(id: $id) { ${CLIENT_FIELDS} } }`;
const CREATE = `mutation($input: CreateClientInput!) { createClient(input: $input) { client { ${CLIENT_FIELDS} } clientSecret } }`;
const UPDATE = `mutation($id: ID!, $input: UpdateClientInput!) { updateClient(id: $id, input: $input) { ${CLIENT_FIELDS} } }`;
const ROTATE = `mutation($id: ID!) { rotateClientSecret(id: $id) { client { id } clientSecret } }`;
const SET_DISABLED = 'mutation($id: ID!, $d: Boolean!) { setClientDisabled(id: $id, disabled: $d) { id disabled } }';
const LOGIN = `mutation($input: LoginInput!) { login(input: $input) { ${PAYLOAD} } }`;
const SUBSCRIPTION = 'subscription { sessionRevoked { sessionId reason } }';
const USER = 'query($id: ID!) { user(id: $id) { id } }';

const SECRET = /^[A-Za-z0-9_-]{43}$/;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

type ClientView = {
  id: string;
  name: string;
  type: string;
  audiences: string[];
  redirectUris: string[];
  allowedOrigins: string[];
  scopes: string[];
  disabled: boolean;
  createdAt: string;
};
type Created = { createClient: { client: ClientView; clientSecret: string | null } };

const loginWith = (gql: Gql, email: string, password: string, clientId?: string) =>
  gql<{ login: Payload }>(LOGIN, { input: { email, password, ...(clientId ? { clientId } : {}) } });

describe.each(dialects())('client admin on %s', (dialect) => {
  let t: TestApp;
  let admin: Payload;
  let user: Payload & { password: string };
  const em = () => t.app.orm.em.fork() as Em;
  const asAdmin = <T = Record<string, any>>(query: string, variables: Record<string, unknown> = {}) =>
    t.gql<T>(query, variables, { token: admin.accessToken });
  const create = (input: Record<string, unknown>) => asAdmin<Created>(CREATE, { input });

  beforeAll(async () => {
    t = await startTestApp({ dialect });
    admin = await signInAsAdmin(t);
    user = await registerUser(t.gql);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('answers AUTHENTICATION_REQUIRED anonymously and FORBIDDEN to a USER; an ADMIN token carries clients:admin', async () => {
    const operations: [string, Record<string, unknown>][] = [
      [CLIENTS, {}],
      [CLIENT, { id: 'default' }],
      [CREATE, { input: { id: 'nope-client', name: 'Nope', type: 'PUBLIC' } }],
      [UPDATE, { id: 'default', input: { name: 'Mine' } }],
      [ROTATE, { id: 'default' }],
      [SET_DISABLED, { id: 'default', d: true }],
    ];
    for (const [query, variables] of operations) {
      expectUnauthenticated(await t.gql(query, variables), 'AUTHENTICATION_REQUIRED');
      const forbidden = await t.gql(query, variables, { token: user.accessToken });
      expect(forbidden.errors?.map((error) => error.extensions?.code)).toEqual(['FORBIDDEN']);
      expect(Object.values(forbidden.data ?? {})).toEqual(forbidden.data ? [null] : []);
    }
    expect((await verifiedClaims(t.url, admin.accessToken)).scope).toBe(
      'profile:read profile:write sessions:read sessions:write users:read users:write sessions:admin clients:admin',
    );
    expect(String((await verifiedClaims(t.url, user.accessToken)).scope).split(' ')).not.toContain('clients:admin');
    // Nothing was created or changed by the refused calls.
    expect((await asAdmin(CLIENT, { id: 'nope-client' })).data).toEqual({ client: null });
    expect((await asAdmin(CLIENT, { id: 'default' })).data?.client).toMatchObject({ name: 'Default', disabled: false });
  });

  it('lists the built-in default client, whose audience is AUDIENCE', async () => {
    const listed = await asAdmin<{ clients: ClientView[] }>(CLIENTS);
    expect(listed.data?.clients.find((client) => client.id === 'default')).toEqual({
      id: 'default',
      name: 'Default',
      type: 'PUBLIC',
      audiences: [AUDIENCE],
      redirectUris: [],
      allowedOrigins: [],
      scopes: [],
      disabled: false,
      createdAt: expect.any(String),
    });
  });

  it('creates a CONFIDENTIAL client whose secret is shown once and stored only as its SHA-256', async () => {
    const created = await create({
      id: 'billing-service',
      name: '  Billing  ',
      type: 'CONFIDENTIAL',
      audiences: ['https://billing.test', 'https://billing.test'],
      scopes: ['storage.read', 'sessions:feed', 'users:read', 'storage.read'],
    });
    expect(created.errors).toBeUndefined();
    const { client, clientSecret } = created.data?.createClient ?? { client: undefined, clientSecret: null };
    expect(clientSecret).toMatch(SECRET);
    expect(client).toEqual({
      id: 'billing-service',
      name: 'Billing',
      type: 'CONFIDENTIAL',
      audiences: ['https://billing.test'],
      redirectUris: [],
      allowedOrigins: [],
      scopes: ['sessions:feed', 'storage.read', 'users:read'],
      disabled: false,
      createdAt: expect.any(String),
    });
    // Read back: the same client, and the secret nowhere (the type has no field for it).
    const read = await asAdmin(CLIENT, { id: 'billing-service' });
    expect(read.data?.client).toEqual(client);
    const listed = await asAdmin(CLIENTS);
    expect(listed.data?.clients).toContainEqual(client);
    expect(JSON.stringify([read, listed])).not.toContain(clientSecret);

    const row = await em().findOneOrFail(Client, { id: 'billing-service' });
    expect(row.secretHash).toBe(sha256(clientSecret as string));
    expect(JSON.stringify(row)).not.toContain(clientSecret);
    const events = await em().find(AuditEvent, { type: 'CLIENT_CREATED' });
    const event = events.find((e) => e.detail?.includes('billing-service'));
    expect(JSON.parse(event?.detail ?? '{}')).toEqual({
      by: admin.user.id,
      clientId: 'billing-service',
      type: 'CONFIDENTIAL',
    });
    expect(JSON.stringify(events)).not.toContain(clientSecret);
  });

  it('creates a PUBLIC client without a secret; no audiences means AUDIENCE', async () => {
    const created = await create({
      id: 'web-app',
      name: 'Web app',
      type: 'PUBLIC',
      audiences: [],
      redirectUris: ['https://app.example.com/callback', 'http://127.0.0.1:8080/cb'],
      allowedOrigins: ['https://app.example.com', 'http://localhost:3000'],
      scopes: ['storage.read'],
    });
    expect(created.data?.createClient).toEqual({
      client: {
        id: 'web-app',
        name: 'Web app',
        type: 'PUBLIC',
        audiences: [AUDIENCE],
        redirectUris: ['https://app.example.com/callback', 'http://127.0.0.1:8080/cb'],
        allowedOrigins: ['https://app.example.com', 'http://localhost:3000'],
        scopes: ['storage.read'],
        disabled: false,
        createdAt: expect.any(String),
      },
      clientSecret: null,
    });
    const row = await em().findOneOrFail(Client, { id: 'web-app' });
    expect([row.secretHash, row.audiences]).toEqual([null, '[]']);
  });

  it('refuses each invalid input with BAD_USER_INPUT naming its field, and creates nothing', async () => {
    const base = { id: 'valid-id', name: 'Valid', type: 'PUBLIC' };
    const cases: [Record<string, unknown>, string][] = [
      [{ id: 'ab' }, 'id'],
      [{ id: 'Upper-case' }, 'id'],
      [{ id: 'has space' }, 'id'],
      [{ id: 'x'.repeat(65) }, 'id'],
      [{ id: 'under_score' }, 'id'],
      [{ id: 'default' }, 'id'],
      [{ name: '' }, 'name'],
      [{ name: '   ' }, 'name'],
      [{ name: 'x'.repeat(201) }, 'name'],
      [{ name: 'bell\u0007' }, 'name'],
      [{ name: 'evil\u202eexe' }, 'name'],
      [{ audiences: [''] }, 'audiences'],
      [{ audiences: ['https://a.test\n'] }, 'audiences'],
      [{ audiences: ['x'.repeat(2049)] }, 'audiences'],
      // Each short enough, too long together (the column holds 64 KiB).
      [{ audiences: Array.from({ length: 40 }, (_, i) => `https://${i}.test/${'é'.repeat(2000)}`) }, 'audiences'],
      [{ redirectUris: ['http://app.example.com/cb'] }, 'redirectUris'],
      [{ redirectUris: ['https://app.example.com/cb?next=1'] }, 'redirectUris'],
      [{ redirectUris: ['https://app.example.com/cb#x'] }, 'redirectUris'],
      [{ redirectUris: ['/relative/cb'] }, 'redirectUris'],
      [{ redirectUris: ['javascript:alert(1)'] }, 'redirectUris'],
      [{ allowedOrigins: ['https://app.example.com/'] }, 'allowedOrigins'],
      [{ allowedOrigins: ['https://app.example.com/path'] }, 'allowedOrigins'],
      [{ allowedOrigins: ['app.example.com'] }, 'allowedOrigins'],
      [{ allowedOrigins: ['HTTPS://APP.EXAMPLE.COM'] }, 'allowedOrigins'],
      [{ allowedOrigins: ['null'] }, 'allowedOrigins'],
      [{ scopes: ['Storage'] }, 'scopes'],
      [{ scopes: ['1storage'] }, 'scopes'],
      [{ scopes: ['x'.repeat(65)] }, 'scopes'],
      [{ scopes: ['sessions:feed'] }, 'scopes'],
      [{ scopes: ['users:read'] }, 'scopes'],
      [{ scopes: ['clients:admin'] }, 'scopes'],
      [{ type: 'CONFIDENTIAL', scopes: ['users:write'] }, 'scopes'],
      [{ type: 'CONFIDENTIAL', scopes: ['profile:read'] }, 'scopes'],
      [{ type: 'CONFIDENTIAL', scopes: ['clients:admin'] }, 'scopes'],
      [{ scopes: Array.from({ length: 51 }, (_, i) => `scope${i}`) }, 'scopes'],
    ];
    for (const [change, field] of cases) {
      const response = await create({ ...base, ...change });
      expect(extensionsOf(response), JSON.stringify(change)).toEqual({ code: 'BAD_USER_INPUT', field });
      expect(response.data ?? null).toBeNull();
    }
    expect((await asAdmin(CLIENT, { id: 'valid-id' })).data).toEqual({ client: null });
    expect((await em().count(Client, { id: 'valid-id' })) + (await em().count(Client, { name: 'Valid' }))).toBe(0);

    // The same rules on update, with the client's own type deciding the scopes.
    expect(extensionsOf(await asAdmin(UPDATE, { id: 'web-app', input: { scopes: ['sessions:feed'] } }))).toEqual({
      code: 'BAD_USER_INPUT',
      field: 'scopes',
    });
    expect(extensionsOf(await asAdmin(UPDATE, { id: 'web-app', input: { name: '' } }))).toEqual({
      code: 'BAD_USER_INPUT',
      field: 'name',
    });
    expect(
      extensionsOf(await asAdmin(UPDATE, { id: 'web-app', input: { allowedOrigins: ['https://x.test/a'] } })),
    ).toEqual({ code: 'BAD_USER_INPUT', field: 'allowedOrigins' });
    expect(extensionsOf(await asAdmin(UPDATE, { id: 'no-such-client', input: { name: 'x' } }))).toEqual({
      code: 'NOT_FOUND',
    });
  });

  it('lets exactly one of 20 concurrent creations of one id win; the others are BAD_USER_INPUT (field id)', async () => {
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => create({ id: 'raced-client', name: `Racer ${i}`, type: 'CONFIDENTIAL' })),
    );
    const won = responses.filter((response) => response.data?.createClient);
    expect(won).toHaveLength(1);
    const lost = responses.filter((response) => !response.data?.createClient).map(extensionsOf);
    expect(lost).toEqual(Array.from({ length: 19 }, () => ({ code: 'BAD_USER_INPUT', field: 'id' })));
    const row = await em().findOneOrFail(Client, { id: 'raced-client' });
    // The row is the winner's, secret included.
    expect(row.name).toBe(won[0]?.data?.createClient.client.name);
    expect(row.secretHash).toBe(sha256(won[0]?.data?.createClient.clientSecret as string));
    expect(await em().count(AuditEvent, { type: 'CLIENT_CREATED', detail: { $like: '%"raced-client"%' } })).toBe(1);
  });

  it('updates the lists given and leaves the others; an empty audience list means AUDIENCE again', async () => {
    await create({ id: 'mobile-app', name: 'Mobile', type: 'PUBLIC', audiences: ['https://m.test'] });
    const updated = await asAdmin<{ updateClient: ClientView }>(UPDATE, {
      id: 'mobile-app',
      input: { name: 'Mobile 2', scopes: ['photos.read', 'photos.write'], allowedOrigins: ['https://m.example.com'] },
    });
    expect(updated.data?.updateClient).toMatchObject({
      name: 'Mobile 2',
      audiences: ['https://m.test'],
      scopes: ['photos.read', 'photos.write'],
      allowedOrigins: ['https://m.example.com'],
      redirectUris: [],
    });
    const cleared = await asAdmin<{ updateClient: ClientView }>(UPDATE, {
      id: 'mobile-app',
      input: { audiences: [], scopes: [] },
    });
    expect(cleared.data?.updateClient).toMatchObject({
      name: 'Mobile 2',
      audiences: [AUDIENCE],
      scopes: [],
      allowedOrigins: ['https://m.example.com'],
    });
    const events = await em().find(AuditEvent, { type: 'CLIENT_UPDATED', detail: { $like: '%"mobile-app"%' } });
    expect(events.map((e) => JSON.parse(e.detail ?? '{}').fields)).toEqual([
      'allowedOrigins,name,scopes',
      'audiences,scopes',
    ]);
  });

  it('rotates a CONFIDENTIAL secret: the old one is gone, service tokens issued before are refused at once', async () => {
    const created = await create({
      id: 'rotating-svc',
      name: 'Rotating',
      type: 'CONFIDENTIAL',
      scopes: ['users:read'],
    });
    const first = created.data?.createClient.clientSecret as string;
    // A service token as the token endpoint would issue it (that endpoint is tested on its own).
    const sign = createAccessTokenSigner(t.app.keys, t.app.config, systemClock);
    const before = await sign.service({ clientId: 'rotating-svc', audiences: [AUDIENCE], scopes: ['users:read'] });
    expect((await t.gql(USER, { id: user.user.id }, { token: before.token })).data).toEqual({
      user: { id: user.user.id },
    });

    const rotated = await asAdmin<{ rotateClientSecret: { client: { id: string }; clientSecret: string } }>(ROTATE, {
      id: 'rotating-svc',
    });
    const second = rotated.data?.rotateClientSecret.clientSecret as string;
    expect(second).toMatch(SECRET);
    expect(second).not.toBe(first);
    const row = await em().findOneOrFail(Client, { id: 'rotating-svc' });
    expect(row.secretHash).toBe(sha256(second));
    expect(row.tokensRevokedReason).toBe('CLIENT_SECRET_ROTATED');
    expect(row.tokensRevokedAt).toBeInstanceOf(Date);
    expectUnauthenticated(await t.gql(USER, { id: user.user.id }, { token: before.token }), 'CLIENT_DISABLED');

    expect(extensionsOf(await asAdmin(ROTATE, { id: 'web-app' }))).toEqual({ code: 'BAD_USER_INPUT', field: 'id' });
    expect(extensionsOf(await asAdmin(ROTATE, { id: 'no-such-client' }))).toEqual({ code: 'NOT_FOUND' });
    expect((await em().findOneOrFail(Client, { id: 'web-app' })).secretHash).toBeNull();
    const events = await em().find(AuditEvent, { type: 'CLIENT_SECRET_ROTATED' });
    expect(events.map((e) => JSON.parse(e.detail ?? '{}'))).toEqual([{ by: admin.user.id, clientId: 'rotating-svc' }]);
    expect(JSON.stringify(events)).not.toContain(second);
  });

  it('disables a client: its sessions end (CLIENT_DISABLED), its tokens are refused, sign-ins naming it too', async () => {
    await create({ id: 'doomed-app', name: 'Doomed', type: 'PUBLIC' });
    const viaApp = await loginWith(t.gql, user.user.email, user.password, 'doomed-app');
    const appSession = viaApp.data?.login as Payload;
    expect((await verifiedClaims(t.url, appSession.accessToken)).client_id).toBe('doomed-app');
    const other = await signIn(t.gql, user.user.email, user.password);
    const sign = createAccessTokenSigner(t.app.keys, t.app.config, systemClock);
    const service = await sign.service({ clientId: 'doomed-app', audiences: [AUDIENCE], scopes: [] });
    expect((await me(t.gql, service.token)).data).toEqual({ me: null });
    const subscription = subscribe<{ sessionRevoked: { sessionId: string; reason: string } }>(
      t.url,
      SUBSCRIPTION,
      other.accessToken,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));

    const disabled = await asAdmin(SET_DISABLED, { id: 'doomed-app', d: true });
    expect(disabled.data).toEqual({ setClientDisabled: { id: 'doomed-app', disabled: true } });
    expect((await subscription.next(1)).sessionRevoked).toEqual({
      sessionId: appSession.session.id,
      reason: 'CLIENT_DISABLED',
    });
    await subscription.dispose();
    expectUnauthenticated(await me(t.gql, appSession.accessToken), 'SESSION_REVOKED');
    expect(extensionsOf(await refreshToken(t.gql, appSession.refreshToken))?.code).toBe('UNAUTHENTICATED');
    expect(extensionsOf(await loginWith(t.gql, user.user.email, user.password, 'doomed-app'))).toEqual({
      code: 'BAD_USER_INPUT',
      field: 'clientId',
    });
    // A token of the client that no session stands behind (a service token) is refused for the client itself.
    expectUnauthenticated(await me(t.gql, service.token), 'CLIENT_DISABLED');
    // The user's sessions of other clients go on.
    expect((await me(t.gql, other.accessToken)).data).toEqual({ me: { id: user.user.id } });
    const row = await em().findOneOrFail(Client, { id: 'doomed-app' });
    expect([row.disabled, row.tokensRevokedReason]).toEqual([true, 'CLIENT_DISABLED']);
    const events = await em().find(AuditEvent, { type: 'CLIENT_DISABLED' });
    expect(events.map((e) => JSON.parse(e.detail ?? '{}'))).toEqual([
      { by: admin.user.id, clientId: 'doomed-app', sessions: 1 },
    ]);
    // Disabling again changes nothing.
    expect((await asAdmin(SET_DISABLED, { id: 'doomed-app', d: true })).data?.setClientDisabled.disabled).toBe(true);
    expect(await em().count(AuditEvent, { type: 'CLIENT_DISABLED' })).toBe(1);

    const enabled = await asAdmin(SET_DISABLED, { id: 'doomed-app', d: false });
    expect(enabled.data).toEqual({ setClientDisabled: { id: 'doomed-app', disabled: false } });
    const again = await loginWith(t.gql, user.user.email, user.password, 'doomed-app');
    expect((await me(t.gql, again.data?.login.accessToken as string)).data).toEqual({ me: { id: user.user.id } });
    // What was refused stays refused.
    expectUnauthenticated(await me(t.gql, appSession.accessToken), 'SESSION_REVOKED');
    expectUnauthenticated(await me(t.gql, service.token), 'CLIENT_DISABLED');
    expect(await em().count(AuditEvent, { type: 'CLIENT_ENABLED' })).toBe(1);
  });

  it('refuses to disable the default client (BAD_USER_INPUT, field id) and answers NOT_FOUND for an unknown one', async () => {
    expect(extensionsOf(await asAdmin(SET_DISABLED, { id: 'default', d: true }))).toEqual({
      code: 'BAD_USER_INPUT',
      field: 'id',
    });
    expect(extensionsOf(await asAdmin(SET_DISABLED, { id: 'no-such-client', d: true }))).toEqual({
      code: 'NOT_FOUND',
    });
    expect(extensionsOf(await asAdmin(SET_DISABLED, { id: 'Bad\u0000id', d: false }))?.code).toMatch(
      /^(BAD_USER_INPUT|NOT_FOUND)$/,
    );
    expect((await me(t.gql, (await signIn(t.gql, user.user.email, user.password)).accessToken)).data).toEqual({
      me: { id: user.user.id },
    });
  });
});

describe.skipIf(!serviceAvailable('redis-server') && !servicesRequired)(
  'clients across two instances sharing Redis',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'auth-clients-'));
    let redis: RunningService;
    let env: Record<string, string>;
    let one: ServiceProcess;
    let two: ServiceProcess;
    let gqlOne: Gql;
    let gqlTwo: Gql;

    beforeAll(async () => {
      redis = await startRedis();
      const dialect = dialects().includes('mysql') ? 'mysql' : 'sqlite';
      env = {
        DATABASE_URL: await databaseUrl(dialect, dir),
        REDIS_URL: redis.url,
        JWT_PRIVATE_KEY: ed25519Pem(),
        BCRYPT_COST: '4',
        DATA_DIR: dir,
        ISSUER: 'https://auth.test',
        AUDIENCE,
      };
      one = await startServiceProcess(env);
      two = await startServiceProcess(env);
      gqlOne = graphqlClient(one.url);
      gqlTwo = graphqlClient(two.url);
    });
    afterAll(async () => {
      await one?.stop();
      await two?.stop();
      await redis?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('disables a client on instance 1: instance 2 refuses its tokens and sign-ins at once, and after a restart', async () => {
      const adminUser = await registerUser(gqlOne);
      const cliEnv = { DATABASE_URL: env.DATABASE_URL as string, DATA_DIR: dir, REDIS_URL: redis.url };
      expect(await runAdminCli(['create-admin', adminUser.user.email], cliEnv)).toMatchObject({ code: 0 });
      const admin = await signIn(gqlOne, adminUser.user.email, adminUser.password);
      const created = await gqlOne(
        CREATE,
        { input: { id: 'shared-app', name: 'Shared', type: 'PUBLIC' } },
        { token: admin.accessToken },
      );
      expect(created.errors).toBeUndefined();

      // Instance 2 hears of the new client through Redis.
      const user = await registerUser(gqlOne);
      let viaApp: Payload | undefined;
      await eventually(async () => {
        viaApp = (await loginWith(gqlTwo, user.user.email, user.password, 'shared-app')).data?.login;
        return viaApp !== undefined;
      });
      if (!viaApp) throw new Error('no sign-in');
      expect((await me(gqlTwo, viaApp.accessToken)).data).toEqual({ me: { id: user.user.id } });
      const watcher = await signIn(gqlTwo, user.user.email, user.password);
      const subscription = subscribe<{ sessionRevoked: { sessionId: string; reason: string } }>(
        two.url,
        SUBSCRIPTION,
        watcher.accessToken,
      );
      await new Promise((resolve) => setTimeout(resolve, 200));

      const disabled = await gqlOne(SET_DISABLED, { id: 'shared-app', d: true }, { token: admin.accessToken });
      expect(disabled.data).toEqual({ setClientDisabled: { id: 'shared-app', disabled: true } });
      // By the time the revocation reached a subscriber of instance 2, instance 2 refuses the client's token and
      // sign-ins naming it (the client's change is published before its sessions' revocations).
      expect((await subscription.next(1, 10_000)).sessionRevoked).toEqual({
        sessionId: viaApp.session.id,
        reason: 'CLIENT_DISABLED',
      });
      await subscription.dispose();
      expectUnauthenticated(await me(gqlTwo, viaApp.accessToken), 'SESSION_REVOKED');
      expect(extensionsOf(await loginWith(gqlTwo, user.user.email, user.password, 'shared-app'))).toEqual({
        code: 'BAD_USER_INPUT',
        field: 'clientId',
      });

      await two.stop();
      two = await startServiceProcess(env);
      gqlTwo = graphqlClient(two.url);
      expectUnauthenticated(await me(gqlTwo, viaApp.accessToken), 'SESSION_REVOKED');
      expect(extensionsOf(await loginWith(gqlTwo, user.user.email, user.password, 'shared-app'))).toEqual({
        code: 'BAD_USER_INPUT',
        field: 'clientId',
      });
      expect((await me(gqlTwo, watcher.accessToken)).data).toEqual({ me: { id: user.user.id } });
    });
  },
);
