// The client registry and POST /oauth/token as an attacker sees them, on SQLite and MariaDB: one answer (body and
// headers) for every failed client authentication, RFC 6749 §2.3.1 form-encoding in Basic, hostile client ids and
// scope strings, tokens used where the other kind is expected (HTTP and WebSocket), odd clientIds in sign-ins,
// and the admin API's input rules for ids, redirect URIs and origins. Nothing answers an internal error or leaks a
// secret.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { verifiedClaims } from './support/claims.ts';
import {
  type CreatedClient,
  createTestClient,
  requestToken,
  serviceToken,
  type TokenResponse,
} from './support/client-credentials.ts';
import { expectError, expectUnauthenticated } from './support/expect.ts';
import { extensionsOf, type Payload, registerUser } from './support/graphql.ts';
import { runAdminCli } from './support/processes.ts';
import { openClient } from './support/subscriptions.ts';

const CHALLENGE = 'Basic realm="oauth", charset="UTF-8"';
const INVALID_CLIENT = { error: 'invalid_client', error_description: 'Client authentication failed' };
const CREATE = 'mutation($input: CreateClientInput!) { createClient(input: $input) { client { id } clientSecret } }';
const UPDATE = 'mutation($id: ID!, $input: UpdateClientInput!) { updateClient(id: $id, input: $input) { id } }';
const LOGIN = 'mutation($input: LoginInput!) { login(input: $input) { accessToken } }';
const REGISTER = 'mutation($input: RegisterInput!) { register(input: $input) { accessToken } }';
const START_OAUTH =
  'mutation($c: ID) { startOAuth(provider: "github", redirectUri: "https://app.test/cb", clientId: $c) { state } }';

/** Everything a caller can compare between two answers: status, every header but Date, and the body. */
const observable = (response: TokenResponse) => ({
  status: response.status,
  headers: [...response.headers.entries()].filter(([name]) => name !== 'date' && name !== 'x-request-id'),
  text: response.text,
});

describe.each(dialects())('attacks on clients and the token endpoint on %s', (dialect) => {
  let t: TestApp;
  let admin: Payload;
  let confidential: CreatedClient;
  let disabled: CreatedClient;
  let publicClient: CreatedClient;
  const asAdmin = <T = Record<string, any>>(query: string, variables: Record<string, unknown>) =>
    t.gql<T>(query, variables, { token: admin.accessToken });

  beforeAll(async () => {
    t = await startTestApp({
      dialect,
      env: {
        OAUTH_GITHUB_CLIENT_ID: 'gh-id',
        OAUTH_GITHUB_CLIENT_SECRET: 'gh-secret',
        OAUTH_REDIRECT_URIS: 'https://app.test/cb',
      },
    });
    admin = await signInAsAdmin(t);
    confidential = await createTestClient(t.gql, admin.accessToken, {
      id: 'attack-svc',
      scopes: ['users:read', 'sessions:feed', 'mail.send'],
    });
    disabled = await createTestClient(t.gql, admin.accessToken, { id: 'attack-off', scopes: ['users:read'] });
    expect(
      (await asAdmin('mutation { setClientDisabled(id: "attack-off", disabled: true) { id } }', {})).errors,
    ).toBeUndefined();
    publicClient = await createTestClient(t.gql, admin.accessToken, { id: 'attack-app', type: 'PUBLIC' });
  });
  afterAll(async () => {
    await t?.close();
  });

  describe('POST /oauth/token', () => {
    it('answers an unknown client, a wrong secret, a PUBLIC and a disabled client byte for byte alike', async () => {
      const secret = confidential.secret ?? '';
      for (const method of ['basic', 'post'] as const) {
        const answers = [
          await requestToken(t.url, { method, clientId: 'no-such-client', secret }),
          await requestToken(t.url, {
            method,
            clientId: confidential.id,
            secret: `${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`,
          }),
          await requestToken(t.url, { method, clientId: publicClient.id, secret: 'anything' }),
          await requestToken(t.url, { method, clientId: disabled.id, secret: disabled.secret ?? '' }),
          await requestToken(t.url, { method, clientId: 'NOT-A-VALID-ID', secret }),
        ].map(observable);
        expect(answers[0]?.status).toBe(401);
        expect(JSON.parse(answers[0]?.text ?? '')).toEqual(INVALID_CLIENT);
        expect(new Map(answers[0]?.headers).get('www-authenticate')).toBe(CHALLENGE);
        for (const answer of answers) expect(answer).toEqual(answers[0]);
      }
    });

    it('form-decodes both parts of a Basic credential (RFC 6749 §2.3.1); malformed escapes are invalid_client', async () => {
      const secret = confidential.secret ?? '';
      // Every character of the id and the secret percent-encoded: what a strict client library sends.
      const encode = (text: string) =>
        [...Buffer.from(text)].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
      const basic = (raw: string) => ({ authorization: `Basic ${Buffer.from(raw).toString('base64')}` });
      const encoded = await requestToken(t.url, {
        method: 'none',
        headers: basic(`${encode(confidential.id)}:${encode(secret)}`),
      });
      expect(encoded.status).toBe(200);
      expect(String(encoded.body.scope).split(' ').sort()).toEqual(['mail.send', 'sessions:feed', 'users:read']);
      const claims = await verifiedClaims(t.url, encoded.body.access_token as string);
      expect(claims.client_id).toBe(confidential.id);
      for (const raw of [
        `%zz:${secret}`,
        `${confidential.id}:%`,
        `${confidential.id}:%ED%A0%80`,
        `%E0%A4%A:${secret}`,
      ]) {
        const answer = await requestToken(t.url, { method: 'none', headers: basic(raw) });
        expect({ status: answer.status, body: answer.body }).toEqual({ status: 401, body: INVALID_CLIENT });
        expect(answer.text).not.toContain(secret);
      }
    });

    it('refuses hostile client ids (NUL, Unicode, 10 KiB, SQL) as invalid_client, never an internal error', async () => {
      const secret = confidential.secret ?? '';
      const ids = [
        `${confidential.id}\u0000`,
        `\u0000${confidential.id}`,
        'attack-svc\u200b',
        'ATTACK-SVC',
        'аttack-svc', // Cyrillic а
        '😀'.repeat(40),
        'a'.repeat(10_000),
        "attack-svc' OR '1'='1",
        'attack-svc%',
        '%',
      ];
      for (const id of ids) {
        for (const method of ['basic', 'post'] as const) {
          const answer = await requestToken(t.url, { method, clientId: id, secret });
          expect({ id, method, status: answer.status, body: answer.body }).toEqual({
            id,
            method,
            status: 401,
            body: INVALID_CLIENT,
          });
        }
      }
    });

    it('grants repeated scope names once, refuses an enormous or non-space-separated scope with invalid_scope', async () => {
      const secret = confidential.secret ?? '';
      const repeated = await requestToken(t.url, {
        clientId: confidential.id,
        secret,
        form: { grant_type: 'client_credentials', scope: 'mail.send mail.send  users:read mail.send' },
      });
      expect(repeated.status).toBe(200);
      const granted = String(repeated.body.scope).split(' ');
      expect(granted.sort()).toEqual(['mail.send', 'users:read']);
      const claims = await verifiedClaims(t.url, repeated.body.access_token as string);
      expect(String(claims.scope).split(' ').sort()).toEqual(['mail.send', 'users:read']);
      // Thousands of repeats of one declared name are that name once.
      const many = await requestToken(t.url, {
        clientId: confidential.id,
        secret,
        form: { grant_type: 'client_credentials', scope: 'mail.send '.repeat(1500) },
      });
      expect({ status: many.status, scope: many.body.scope }).toEqual({ status: 200, scope: 'mail.send' });
      for (const scope of [
        `${'mail.send '.repeat(1500)}users:write`,
        'x'.repeat(15_000),
        'mail.send\tusers:read',
        'mail.send,users:read',
        'users:write',
        'clients:admin',
        'MAIL.SEND',
        ' ',
      ]) {
        const answer = await requestToken(t.url, {
          clientId: confidential.id,
          secret,
          form: { grant_type: 'client_credentials', scope },
        });
        expect({ scope: scope.slice(0, 40), status: answer.status, error: answer.body.error }).toEqual({
          scope: scope.slice(0, 40),
          status: 400,
          error: 'invalid_scope',
        });
      }
      // Over the body limit: refused before it is read, and still not an internal error.
      const huge = await requestToken(t.url, {
        clientId: confidential.id,
        secret,
        form: { grant_type: 'client_credentials', scope: 'mail.send '.repeat(5000) },
      });
      expect({ status: huge.status, error: huge.body.error }).toEqual({ status: 413, error: 'invalid_request' });
    });

    it('issues a token that verifies on this instance for a client made by the admin CLI without Redis', async () => {
      const made = await runAdminCli(
        ['create-client', '--id', 'attack-cli', '--name', 'CLI', '--type', 'CONFIDENTIAL', '--scope', 'users:read'],
        { DATABASE_URL: t.databaseUrl, DATA_DIR: t.dir },
      );
      expect(made.code, made.err).toBe(0);
      const secret = /client_secret: (\S+)/.exec(made.out)?.[1] ?? '';
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const token = await serviceToken(t.url, { id: 'attack-cli', secret });
      const read = await t.gql('{ users(first: 1) { edges { node { id } } } }', {}, { token });
      expect(read.errors).toBeUndefined();
      // Disabled from the CLI too: new tokens are refused at once (the endpoint reads the row); the one issued
      // expires within its lifetime, as the README says of CLI changes without Redis.
      expect(
        (await runAdminCli(['disable-client', '--id', 'attack-cli'], { DATABASE_URL: t.databaseUrl, DATA_DIR: t.dir }))
          .code,
      ).toBe(0);
      const refused = await requestToken(t.url, { clientId: 'attack-cli', secret });
      expect({ status: refused.status, body: refused.body }).toEqual({ status: 401, body: INVALID_CLIENT });
    });

    it('refuses a user token as client authentication, and a service token as a refresh token', async () => {
      const user = await registerUser(t.gql);
      const bearer = await requestToken(t.url, {
        method: 'none',
        headers: { authorization: `Bearer ${user.accessToken}` },
      });
      expect({ status: bearer.status, body: bearer.body }).toEqual({ status: 401, body: INVALID_CLIENT });
      const token = await serviceToken(t.url, confidential, 'users:read');
      const refresh = await t.gql('mutation($t: String!) { refresh(refreshToken: $t) { accessToken } }', { t: token });
      expectUnauthenticated(refresh, 'INVALID_REFRESH_TOKEN');
    });
  });

  describe('service tokens where a user is expected', () => {
    let token: string;
    beforeAll(async () => {
      token = await serviceToken(t.url, confidential);
    });

    it('reads users with users:read, but sessions need sessions:admin: FORBIDDEN; me is null', async () => {
      const user = await registerUser(t.gql);
      const listed = await t.gql('{ users(first: 100) { edges { node { id } } } }', {}, { token });
      expect(listed.errors).toBeUndefined();
      const sessions = await t.gql(
        'query($id: ID!) { user(id: $id) { id sessions { id } } }',
        { id: user.user.id },
        { token },
      );
      expect(sessions.errors?.map((error) => error.extensions?.code)).toEqual(['FORBIDDEN']);
      expect(sessions.data?.user?.sessions ?? null).toBeNull();
      expect(await t.gql('{ me { id } }', {}, { token })).toMatchObject({ data: { me: null }, errors: undefined });
      for (const mutation of [
        'mutation { revokeOtherSessions }',
        'mutation { updateProfile(input: { displayName: "x" }) { id } }',
        'mutation { requestEmailVerification }',
        'mutation { deleteAccount(password: "x") }',
      ]) {
        expectError(await t.gql(mutation, {}, { token }), 'FORBIDDEN');
      }
      expectError(
        await t.gql(
          'mutation($u: ID!) { setUserScopes(userId: $u, scopes: ["mail.send"]) { id } }',
          { u: user.user.id },
          { token },
        ),
        'FORBIDDEN',
      );
      expectError(await t.gql('{ clients { id } }', {}, { token }), 'FORBIDDEN');
      expectError(await t.gql('{ myData }', {}, { token }), 'FORBIDDEN');
    });

    it('resolves User entities (_entities) for users:read as user(id) does; sessions:feed alone is FORBIDDEN', async () => {
      const user = await registerUser(t.gql);
      const entities = (fields: string, bearer: string) =>
        t.gql(
          `query($r: [_Any!]!) { _entities(representations: $r) { ... on User { ${fields} } } }`,
          { r: [{ __typename: 'User', id: user.user.id }] },
          { token: bearer },
        );
      const read = await entities('id email', token);
      expect(read.errors).toBeUndefined();
      expect(read.data).toEqual({ _entities: [{ id: user.user.id, email: user.user.email }] });
      const sessions = await entities('id sessions { id }', token);
      expect(sessions.errors?.map((error) => error.extensions?.code)).toEqual(['FORBIDDEN']);
      const feedOnly = await createTestClient(t.gql, admin.accessToken, {
        id: 'attack-feed',
        scopes: ['sessions:feed'],
      });
      const feedRead = await entities('id', await serviceToken(t.url, feedOnly));
      expect(feedRead.data).toEqual({ _entities: [null] });
      expect(feedRead.errors?.map((error) => error.extensions)).toEqual([{ code: 'FORBIDDEN' }]);
    });

    it('refuses a service token subscribing to sessionRevoked over WebSocket: it has no user', async () => {
      const { client, closed } = openClient(t.url, token);
      const outcome = await new Promise<{ errors?: unknown; data?: unknown; complete?: boolean }>((resolve) => {
        client.subscribe(
          { query: 'subscription { sessionRevoked { sessionId } }' },
          {
            next: (result) => resolve({ errors: result.errors, data: result.data }),
            error: (error) => resolve({ errors: error }),
            complete: () => resolve({ complete: true }),
          },
        );
      });
      await client.dispose();
      await closed;
      const codes = (Array.isArray(outcome.errors) ? outcome.errors : []).map(
        (error: { extensions?: { code?: string } }) => error.extensions?.code,
      );
      expect(codes).toEqual(['FORBIDDEN']);
    });

    it('refuses a user token where sessions:feed is needed, even an ADMIN one', async () => {
      expectError(await t.gql('{ revocations { clientId } }', {}, { token: admin.accessToken }), 'FORBIDDEN');
    });
  });

  describe('clientId in sign-ins', () => {
    it('answers BAD_USER_INPUT (field clientId) for NUL, 65 characters, uppercase, blank and Unicode ids', async () => {
      const user = await registerUser(t.gql);
      const ids = [
        'default\u0000',
        '\u0000',
        'a'.repeat(65),
        'DEFAULT',
        'Default',
        ' default',
        '',
        'dеfault',
        publicClient.id.toUpperCase(),
      ];
      for (const clientId of ids) {
        const login = await t.gql(LOGIN, { input: { email: user.user.email, password: user.password, clientId } });
        expect({ clientId, extensions: extensionsOf(login) }).toEqual({
          clientId,
          extensions: { code: 'BAD_USER_INPUT', field: 'clientId' },
        });
        const register = await t.gql(REGISTER, {
          input: { email: `x${Date.now()}${Math.random()}@example.com`, password: 'correct horse battery', clientId },
        });
        expect({ clientId, extensions: extensionsOf(register) }).toEqual({
          clientId,
          extensions: { code: 'BAD_USER_INPUT', field: 'clientId' },
        });
        const started = await t.gql(START_OAUTH, { c: clientId });
        expect({ clientId, extensions: extensionsOf(started) }).toEqual({
          clientId,
          extensions: { code: 'BAD_USER_INPUT', field: 'clientId' },
        });
      }
    });
  });

  describe('the admin API', () => {
    const create = (input: Record<string, unknown>) =>
      asAdmin(CREATE, { input: { name: 'x', type: 'PUBLIC', ...input } });

    it('refuses re-creating default, and ids differing only in case or by Unicode look-alikes', async () => {
      for (const id of [
        'default',
        'Default',
        'ATTACK-APP',
        'attack-app',
        'аttack-app',
        'attack-app\u0000',
        'attack-app ',
      ]) {
        expect({ id, extensions: extensionsOf(await create({ id })) }).toEqual({
          id,
          extensions: { code: 'BAD_USER_INPUT', field: 'id' },
        });
      }
    });

    it("refuses a client id shaped like a user id: its service tokens' sub would be that user's (RFC 9068 §5)", async () => {
      const user = await registerUser(t.gql);
      for (const id of [user.user.id, '00000000-0000-4000-8000-000000000000']) {
        expect({
          id,
          extensions: extensionsOf(await create({ id, type: 'CONFIDENTIAL', scopes: ['users:read'] })),
        }).toEqual({
          id,
          extensions: { code: 'BAD_USER_INPUT', field: 'id' },
        });
      }
      expect((await asAdmin('query($id: ID!) { client(id: $id) { id } }', { id: user.user.id })).data).toEqual({
        client: null,
      });
      // Other ids with hyphens and hex digits are fine.
      expect((await create({ id: 'deadbeef-0000-4000-8000-00000000000' })).errors).toBeUndefined();
    });

    it('refuses a CONFIDENTIAL client declaring users:write, clients:admin or sessions:admin, and a PUBLIC one declaring users:read', async () => {
      for (const scope of ['users:write', 'clients:admin', 'sessions:admin', 'profile:read', 'sessions:write']) {
        expect(extensionsOf(await create({ id: 'attack-new', type: 'CONFIDENTIAL', scopes: [scope] }))).toEqual({
          code: 'BAD_USER_INPUT',
          field: 'scopes',
        });
        expect(extensionsOf(await asAdmin(UPDATE, { id: confidential.id, input: { scopes: [scope] } }))).toEqual({
          code: 'BAD_USER_INPUT',
          field: 'scopes',
        });
      }
      for (const scope of ['users:read', 'sessions:feed']) {
        expect(extensionsOf(await create({ id: 'attack-new', scopes: [scope] }))).toEqual({
          code: 'BAD_USER_INPUT',
          field: 'scopes',
        });
        expect(extensionsOf(await asAdmin(UPDATE, { id: publicClient.id, input: { scopes: [scope] } }))).toEqual({
          code: 'BAD_USER_INPUT',
          field: 'scopes',
        });
      }
      expect((await asAdmin('{ client(id: "attack-new") { id } }', {})).data).toEqual({ client: null });
    });

    it('refuses redirect URIs with a fragment, a query, userinfo or plain http elsewhere than loopback', async () => {
      for (const uri of [
        'https://app.test/cb#',
        'https://app.test/cb#x',
        'https://app.test/cb?x=1',
        'https://app.test/cb?',
        'https://user:pass@app.test/cb',
        'https://app.test@evil.test/cb',
        'https://@app.test/cb',
        'http://user@localhost:8080/cb',
        'http://app.test/cb',
        'javascript:alert(1)',
        'https://app.test/cb\u0000',
        ' https://app.test/cb',
        '/cb',
      ]) {
        expect({ uri, extensions: extensionsOf(await create({ id: 'attack-uri', redirectUris: [uri] })) }).toEqual({
          uri,
          extensions: { code: 'BAD_USER_INPUT', field: 'redirectUris' },
        });
      }
    });

    it('refuses origins with a path, a query, a trailing slash, userinfo, a default port or another scheme', async () => {
      for (const origin of [
        'https://app.test/',
        'https://app.test/path',
        'https://app.test?x',
        'https://user@app.test',
        'https://app.test:443',
        'HTTPS://APP.TEST',
        'null',
        '*',
        'ftp://app.test',
        'https://app.test ',
      ]) {
        expect({
          origin,
          extensions: extensionsOf(await create({ id: 'attack-origin', allowedOrigins: [origin] })),
        }).toEqual({
          origin,
          extensions: { code: 'BAD_USER_INPUT', field: 'allowedOrigins' },
        });
      }
    });

    it('never answers a client secret outside createClient and rotateClientSecret', async () => {
      const listed = await asAdmin(
        '{ clients { id name type audiences redirectUris allowedOrigins scopes disabled createdAt } }',
        {},
      );
      expect(JSON.stringify(listed)).not.toContain(confidential.secret);
      const user = await registerUser(t.gql);
      const audit = await asAdmin('{ auditEvents(first: 100) { edges { node { type detail } } } }', {});
      expect(JSON.stringify(audit)).not.toContain(confidential.secret);
      void user;
    });
  });
});
