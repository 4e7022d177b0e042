// POST /oauth/token (client credentials, RFC 6749 §4.4): every §5.1/§5.2 answer field by field, the service token's
// claims read with fast-jwt against our JWKS, the RFC 8414 metadata, service tokens on /graphql, client-wide
// revocations (secret rotated, client disabled) refused on a second instance at once and after a restart, and the
// rate limits under concurrency. Through the public API, on SQLite and MariaDB.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent } from '../src/db/entities.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { verifiedClaims } from './support/claims.ts';
import {
  basicCredential,
  type CreatedClient,
  createTestClient,
  requestToken,
  serviceToken,
  type TokenResponse,
} from './support/client-credentials.ts';
import { ed25519Pem, expectError, expectUnauthenticated } from './support/expect.ts';
import { type Gql, registerUser } from './support/graphql.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';
import { eventually } from './support/subscriptions.ts';

const AUDIENCE = 'https://api.test';
const LIFETIME_SECONDS = 15 * 60;
const CHALLENGE = 'Basic realm="oauth", charset="UTF-8"';

const clientId = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

/** An RFC 6749 §5.2 refusal: exactly this status and code, JSON, never cached, the challenge only on a 401. */
function expectRefusal(response: TokenResponse, status: number, error: string, secrets: string[] = []) {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toBe('application/json;charset=UTF-8');
  expect(response.headers.get('cache-control')).toBe('no-store');
  expect(response.headers.get('pragma')).toBe('no-cache');
  expect(response.headers.get('www-authenticate')).toBe(status === 401 ? CHALLENGE : null);
  expect(Object.keys(response.body).sort()).toEqual(['error', 'error_description']);
  expect(response.body.error).toBe(error);
  expect(typeof response.body.error_description).toBe('string');
  for (const secret of secrets) expect(response.text).not.toContain(secret);
}

/** An RFC 6749 §5.1 success: exactly these fields, never cached; returns the token. */
function expectIssued(response: TokenResponse, scope: string): string {
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('application/json;charset=UTF-8');
  expect(response.headers.get('cache-control')).toBe('no-store');
  expect(response.headers.get('pragma')).toBe('no-cache');
  expect(response.headers.get('www-authenticate')).toBeNull();
  expect(Object.keys(response.body).sort()).toEqual(['access_token', 'expires_in', 'scope', 'token_type']);
  expect(response.body.token_type).toBe('Bearer');
  expect(response.body.scope).toBe(scope);
  // From the moment of the answer (§5.1): the lifetime, less the part of the issuing second already gone.
  expect([LIFETIME_SECONDS - 1, LIFETIME_SECONDS]).toContain(response.body.expires_in);
  return response.body.access_token as string;
}

const USER_EMAIL = 'query($id: ID!) { user(id: $id) { id email } }';

// The second instance hears the first through Redis; without it (a machine lacking redis-server) that part skips.
const hasRedis = serviceAvailable('redis-server');

describe.each(dialects())('client credentials on %s', (dialect) => {
  let redis: RunningService | undefined;
  let t: TestApp;
  let admin: string;
  const key = ed25519Pem();
  let sharedEnv: Record<string, string>;

  beforeAll(async () => {
    if (hasRedis) redis = await startRedis();
    sharedEnv = {
      JWT_PRIVATE_KEY: key,
      PUBLIC_URL: 'https://auth.test',
      ...(redis ? { REDIS_URL: redis.url } : {}),
    };
    t = await startTestApp({ dialect, env: sharedEnv });
    admin = (await signInAsAdmin(t)).accessToken;
  });
  afterAll(async () => {
    await t?.close();
    await redis?.stop();
  });

  const newClient = (input: Parameters<typeof createTestClient>[2]) => createTestClient(t.gql, admin, input);

  const auditRows = async (type: string) =>
    (await t.app.orm.em.fork().find(AuditEvent, { type }, { orderBy: { id: 'asc' } })).map((row) => ({
      ip: row.ipAddress,
      detail: row.detail ? JSON.parse(row.detail) : null,
    }));

  describe('answers', () => {
    let service: CreatedClient;
    beforeAll(async () => {
      service = await newClient({
        id: clientId('svc'),
        audiences: ['https://storage.test'],
        scopes: ['storage.read', 'storage.write', 'users:read'],
      });
    });

    it('issues a token to client_secret_basic and to client_secret_post, with every field of §5.1', async () => {
      const basic = await requestToken(t.url, { clientId: service.id, secret: service.secret as string });
      expectIssued(basic, 'storage.read storage.write users:read');
      const post = await requestToken(t.url, {
        method: 'post',
        clientId: service.id,
        secret: service.secret as string,
      });
      expectIssued(post, 'storage.read storage.write users:read');
      expect(post.body.access_token).not.toBe(basic.body.access_token);
      expect(post.body).not.toHaveProperty('refresh_token');
    });

    it('signs an RFC 9068 service token: sub = client_id, no sid or roles, the audiences, the scope, 15 minutes', async () => {
      const token = expectIssued(
        await requestToken(t.url, { clientId: service.id, secret: service.secret as string }),
        'storage.read storage.write users:read',
      );
      // users:read is built in: this API is an audience too. fast-jwt checks typ at+jwt, iss and aud.
      const claims = await verifiedClaims(t.url, token, { audience: 'https://storage.test' });
      expect(Object.keys(claims).sort()).toEqual(['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'scope', 'sub']);
      expect(claims).toMatchObject({
        iss: 'https://auth.test',
        sub: service.id,
        client_id: service.id,
        aud: ['https://storage.test', AUDIENCE],
        scope: 'storage.read storage.write users:read',
      });
      expect((claims.exp as number) - (claims.iat as number)).toBe(LIFETIME_SECONDS);
      const header = JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString('utf8'));
      expect(header.typ).toBe('at+jwt');
    });

    it('grants a requested subset of the scopes, and this API is no audience of a token without a built-in one', async () => {
      const response = await requestToken(t.url, {
        clientId: service.id,
        secret: service.secret as string,
        form: { grant_type: 'client_credentials', scope: 'storage.write  storage.read' },
      });
      const token = expectIssued(response, 'storage.read storage.write');
      const claims = await verifiedClaims(t.url, token, { audience: 'https://storage.test' });
      expect(claims.aud).toBe('https://storage.test');
      expectUnauthenticated(await t.gql('{ me { id } }', {}, { token }), 'INVALID_TOKEN');
    });

    it('refuses a scope the client does not declare with invalid_scope', async () => {
      for (const scope of ['users:write', 'storage.read storage.delete', 'sessions:feed', 'profile:read']) {
        const response = await requestToken(t.url, {
          clientId: service.id,
          secret: service.secret as string,
          form: { grant_type: 'client_credentials', scope },
        });
        expectRefusal(response, 400, 'invalid_scope', [service.secret as string]);
      }
    });

    it('answers invalid_client (401, WWW-Authenticate) alike for no authentication, a wrong secret, an unknown, a PUBLIC and a disabled client', async () => {
      const app = await newClient({ id: clientId('app'), type: 'PUBLIC' });
      const disabled = await newClient({ id: clientId('off'), scopes: ['storage.read'] });
      const off = await t.gql(
        'mutation($id: ID!) { setClientDisabled(id: $id, disabled: true) { disabled } }',
        { id: disabled.id },
        { token: admin },
      );
      expect(off.data).toEqual({ setClientDisabled: { disabled: true } });
      const wrong = `${service.secret}x`;
      const cases: Parameters<typeof requestToken>[1][] = [
        { method: 'none' },
        { clientId: service.id, secret: wrong },
        { method: 'post', clientId: service.id, secret: wrong },
        { method: 'post', clientId: service.id },
        { clientId: 'no-such-client', secret: service.secret as string },
        { clientId: app.id, secret: 'anything' },
        { clientId: 'default', secret: 'anything' },
        { clientId: disabled.id, secret: disabled.secret as string },
        { method: 'post', clientId: disabled.id, secret: disabled.secret as string },
        { method: 'none', headers: { authorization: `Bearer ${admin}` } },
        { method: 'none', headers: { authorization: 'Basic not base64!' } },
      ];
      const answers = [];
      for (const options of cases) {
        const response = await requestToken(t.url, options);
        expectRefusal(response, 401, 'invalid_client', [service.secret as string, disabled.secret as string, wrong]);
        answers.push(response.text);
      }
      // One identical answer: nothing tells an unknown client from a wrong secret.
      expect(new Set(answers).size).toBe(1);
    });

    it('refuses two authentication methods at once, a missing or other grant_type, and repeated parameters', async () => {
      const secret = service.secret as string;
      const both = await requestToken(t.url, {
        clientId: service.id,
        secret,
        form: { grant_type: 'client_credentials', client_id: service.id, client_secret: secret },
      });
      expectRefusal(both, 400, 'invalid_request', [secret]);
      const otherId = await requestToken(t.url, {
        clientId: service.id,
        secret,
        form: { grant_type: 'client_credentials', client_id: 'someone-else' },
      });
      expectRefusal(otherId, 400, 'invalid_request', [secret]);
      // The Basic client named in the body as well is one method (some libraries send it).
      const sameId = await requestToken(t.url, {
        clientId: service.id,
        secret,
        form: { grant_type: 'client_credentials', client_id: service.id },
      });
      expect(sameId.status).toBe(200);

      expectRefusal(await requestToken(t.url, { clientId: service.id, secret, form: {} }), 400, 'invalid_request');
      expectRefusal(
        await requestToken(t.url, { clientId: service.id, secret, form: { grant_type: '' } }),
        400,
        'invalid_request',
      );
      for (const grant of ['password', 'refresh_token', 'authorization_code', 'CLIENT_CREDENTIALS']) {
        const response = await requestToken(t.url, { clientId: service.id, secret, form: { grant_type: grant } });
        expectRefusal(response, 400, 'unsupported_grant_type', [secret]);
      }
      for (const form of [
        [
          ['grant_type', 'client_credentials'],
          ['grant_type', 'client_credentials'],
        ],
        [
          ['grant_type', 'client_credentials'],
          ['scope', 'storage.read'],
          ['scope', 'storage.write'],
        ],
      ] as [string, string][][]) {
        expectRefusal(await requestToken(t.url, { clientId: service.id, secret, form }), 400, 'invalid_request');
      }
      const post = await requestToken(t.url, {
        method: 'post',
        clientId: service.id,
        secret,
        form: [
          ['grant_type', 'client_credentials'],
          ['client_secret', secret],
        ],
      });
      expectRefusal(post, 400, 'invalid_request', [secret]);
    });

    it('takes only a form body: JSON is invalid_request, a body over 16 KiB is 413, and GET is 405 (Allow: POST)', async () => {
      const secret = service.secret as string;
      const json = await fetch(`${t.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: basicCredential(service.id, secret) },
        body: JSON.stringify({ grant_type: 'client_credentials' }),
      });
      const jsonText = await json.text();
      expectRefusal(
        { status: json.status, headers: json.headers, text: jsonText, body: JSON.parse(jsonText) },
        400,
        'invalid_request',
        [secret],
      );

      const large = await requestToken(t.url, {
        clientId: service.id,
        secret,
        form: { grant_type: 'client_credentials', padding: 'x'.repeat(17 * 1024) },
      });
      expect(large.status).toBe(413);
      expect(large.body.error).toBe('invalid_request');
      expect(large.headers.get('cache-control')).toBe('no-store');

      for (const method of ['GET', 'PUT', 'DELETE']) {
        const response = await fetch(`${t.url}/oauth/token`, { method });
        expect(response.status).toBe(405);
        expect(response.headers.get('allow')).toBe('POST');
        expect(response.headers.get('cache-control')).toBe('no-store');
        expect(((await response.json()) as { error: string }).error).toBe('invalid_request');
      }
    });

    it('audits issued tokens and failed authentications, never with the secret', async () => {
      const audited = await newClient({ id: clientId('aud'), scopes: ['storage.read'] });
      const secret = audited.secret as string;
      const wrong = `wrong-${randomUUID()}`;
      await serviceToken(t.url, audited);
      await requestToken(t.url, { clientId: audited.id, secret: wrong });
      await requestToken(t.url, { method: 'post', clientId: `${'z'.repeat(100)}`, secret: wrong });
      const issued = await auditRows('CLIENT_TOKEN_ISSUED');
      expect(issued.filter((row) => row.detail.clientId === audited.id)).toEqual([
        { ip: '127.0.0.1', detail: { clientId: audited.id, scope: 'storage.read' } },
      ]);
      const failed = await auditRows('CLIENT_AUTHENTICATION_FAILED');
      expect(failed.filter((row) => row.detail.clientId === audited.id)).toEqual([
        { ip: '127.0.0.1', detail: { clientId: audited.id, method: 'client_secret_basic' } },
      ]);
      // An id as presented, cut to the length of a real one.
      expect(failed.filter((row) => row.detail.clientId.startsWith('zzz'))).toEqual([
        { ip: '127.0.0.1', detail: { clientId: 'z'.repeat(64), method: 'client_secret_post' } },
      ]);
      const all = JSON.stringify(await t.app.orm.em.fork().find(AuditEvent, {}));
      expect(all).not.toContain(secret);
      expect(all).not.toContain(wrong);
    });
  });

  it('publishes the token endpoint, its grant, both authentication methods and the built-in scopes (RFC 8414)', async () => {
    const response = await fetch(`${t.url}/.well-known/oauth-authorization-server`);
    expect(response.status).toBe(200);
    const metadata = (await response.json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({
      issuer: 'https://auth.test',
      jwks_uri: 'https://auth.test/.well-known/jwks.json',
      token_endpoint: 'https://auth.test/oauth/token',
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    });
    expect([...(metadata.scopes_supported as string[])].sort()).toEqual(
      [
        'clients:admin',
        'profile:read',
        'profile:write',
        'sessions:admin',
        'sessions:feed',
        'sessions:read',
        'sessions:write',
        'users:read',
        'users:write',
      ].sort(),
    );
  });

  describe('service tokens on /graphql', () => {
    let reader: CreatedClient;
    let token: string;
    let gql: Gql;
    beforeAll(async () => {
      gql = t.gql;
      reader = await newClient({ id: clientId('reader'), scopes: ['users:read'] });
      token = await serviceToken(t.url, reader);
    });

    it('reads what users:read allows; me is null; user-only fields are FORBIDDEN', async () => {
      const user = await registerUser(gql);
      const read = await gql(USER_EMAIL, { id: user.user.id }, { token });
      expect(read.errors).toBeUndefined();
      expect(read.data).toEqual({ user: { id: user.user.id, email: user.user.email } });
      expect(await gql('{ me { id } }', {}, { token })).toMatchObject({ data: { me: null }, errors: undefined });
      expectError(await gql('mutation { logout }', {}, { token }), 'FORBIDDEN');
      expectError(
        await gql(
          'mutation($id: ID!) { setUserRoles(userId: $id, roles: [USER]) { id } }',
          { id: user.user.id },
          { token },
        ),
        'FORBIDDEN',
      );
    });

    it('refuses a token issued right after a rotation once the client is disabled in the same second, after enabling too', async () => {
      const quick = await newClient({ id: clientId('quick'), scopes: ['users:read'] });
      const mutate = (query: string, variables: Record<string, unknown>) => gql(query, variables, { token: admin });
      const rotated = await mutate('mutation($id: ID!) { rotateClientSecret(id: $id) { clientSecret } }', {
        id: quick.id,
      });
      const secret = (rotated.data as { rotateClientSecret: { clientSecret: string } }).rotateClientSecret.clientSecret;
      // Issued at once after the rotation, then the client disabled at once after that: usually all in one second.
      const issued = await serviceToken(t.url, { id: quick.id, secret });
      const user = (await registerUser(gql)).user.id;
      expect((await gql(USER_EMAIL, { id: user }, { token: issued })).data).toEqual({
        user: { id: user, email: expect.any(String) },
      });
      const setDisabled = 'mutation($id: ID!, $d: Boolean!) { setClientDisabled(id: $id, disabled: $d) { disabled } }';
      expect((await mutate(setDisabled, { id: quick.id, d: true })).data).toEqual({
        setClientDisabled: { disabled: true },
      });
      expect((await mutate(setDisabled, { id: quick.id, d: false })).data).toEqual({
        setClientDisabled: { disabled: false },
      });
      expectUnauthenticated(await gql(USER_EMAIL, { id: user }, { token: issued }), 'CLIENT_DISABLED');
    });
  });

  describe('client-wide revocations on a second instance sharing Redis', () => {
    let two: TestApp;
    let client: CreatedClient;
    let user: string;

    beforeAll(async () => {
      if (!hasRedis) return;
      two = await startTestApp({ databaseUrl: t.databaseUrl, env: sharedEnv });
      client = await newClient({ id: clientId('rot'), scopes: ['users:read'] });
      user = (await registerUser(t.gql)).user.id;
    });
    afterAll(() => two?.close());

    /** `user(id)` on `app` with `token`: the id when the token is taken, the reason when it is refused. */
    const readOn = async (app: TestApp, token: string) => {
      const response = await app.gql(USER_EMAIL, { id: user }, { token });
      return response.data?.user?.id ?? response.errors?.[0]?.extensions?.reason;
    };

    async function restartTwo() {
      await two.close();
      two = await startTestApp({ databaseUrl: t.databaseUrl, env: sharedEnv });
    }

    it('refuses tokens issued before a secret rotation (CLIENT_DISABLED) at once and after a restart; later ones work', async () => {
      const before = await serviceToken(t.url, client);
      expect(await readOn(two, before)).toBe(user);

      const rotated = await t.gql<{ rotateClientSecret: { clientSecret: string } }>(
        'mutation($id: ID!) { rotateClientSecret(id: $id) { clientSecret } }',
        { id: client.id },
        { token: admin },
      );
      const secret = rotated.data?.rotateClientSecret.clientSecret as string;
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      // This instance applied the rotation before answering; the second hears it through Redis.
      expect(await readOn(t, before)).toBe('CLIENT_DISABLED');
      await eventually(async () => (await readOn(two, before)) === 'CLIENT_DISABLED', 2000);

      expectRefusal(
        await requestToken(t.url, { clientId: client.id, secret: client.secret as string }),
        401,
        'invalid_client',
      );
      // Right after the rotation, even within its second: the new token's iat is past the cutoff.
      const after = await serviceToken(two.url, { id: client.id, secret });
      expect(await readOn(two, after)).toBe(user);
      expect(await readOn(t, after)).toBe(user);

      await restartTwo();
      expect(await readOn(two, before)).toBe('CLIENT_DISABLED');
      expect(await readOn(two, after)).toBe(user);
      client = { id: client.id, secret };
    });

    it('refuses every token of a disabled client at once and after a restart, and those issued before it after enabling', async () => {
      const issued = await serviceToken(t.url, client);
      expect(await readOn(two, issued)).toBe(user);
      const setDisabled = (disabled: boolean) =>
        t.gql(
          'mutation($id: ID!, $d: Boolean!) { setClientDisabled(id: $id, disabled: $d) { disabled } }',
          { id: client.id, d: disabled },
          { token: admin },
        );
      expect((await setDisabled(true)).data).toEqual({ setClientDisabled: { disabled: true } });
      expect(await readOn(t, issued)).toBe('CLIENT_DISABLED');
      await eventually(async () => (await readOn(two, issued)) === 'CLIENT_DISABLED', 2000);
      expectRefusal(
        await requestToken(two.url, { clientId: client.id, secret: client.secret as string }),
        401,
        'invalid_client',
      );

      await restartTwo();
      expect(await readOn(two, issued)).toBe('CLIENT_DISABLED');

      expect((await setDisabled(false)).data).toEqual({ setClientDisabled: { disabled: false } });
      await eventually(async () => two.app.clients.get(client.id)?.disabled === false, 2000);
      expect(await readOn(two, issued)).toBe('CLIENT_DISABLED');
      const fresh = await serviceToken(two.url, client);
      expect(await readOn(two, fresh)).toBe(user);
      expect(await readOn(t, fresh)).toBe(user);
    });
  });

  describe('rate limits', () => {
    // Per client 10 a minute, per IP 20; each test speaks from its own addresses (X-Forwarded-For, one proxy).
    let r: TestApp;
    let rAdmin: string;
    let next = 0;
    const ip = () => `203.0.113.${++next}`;

    beforeAll(async () => {
      r = await startTestApp({
        dialect,
        env: {
          ...(redis ? { REDIS_URL: redis.url } : {}),
          TRUST_PROXY: '1',
          RATE_LIMIT_CLIENT_TOKEN: '10/1m',
          RATE_LIMIT_CLIENT_TOKEN_IP: '20/1m',
        },
      });
      rAdmin = (await signInAsAdmin(r)).accessToken;
    });
    afterAll(() => r?.close());

    const from = (address: string) => ({ 'x-forwarded-for': address });
    const statuses = (responses: TokenResponse[]) => {
      const counts: Record<number, number> = {};
      for (const response of responses) counts[response.status] = (counts[response.status] ?? 0) + 1;
      return counts;
    };

    it('issues exactly 10 of 40 concurrent requests of one client, the rest 429 with Retry-After', async () => {
      const client = await createTestClient(r.gql, rAdmin, { id: clientId('busy'), scopes: ['storage.read'] });
      const responses = await Promise.all(
        Array.from({ length: 40 }, () =>
          requestToken(r.url, { clientId: client.id, secret: client.secret as string, headers: from(ip()) }),
        ),
      );
      expect(statuses(responses)).toEqual({ 200: 10, 429: 30 });
      for (const response of responses.filter((response) => response.status === 429)) {
        expectRefusal(response, 429, 'temporarily_unavailable', [client.secret as string]);
        const retryAfter = Number(response.headers.get('retry-after'));
        expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60).toBe(true);
      }
    });

    it('does not lock a client out when others send wrong secrets with its id', async () => {
      const client = await createTestClient(r.gql, rAdmin, { id: clientId('target'), scopes: ['storage.read'] });
      const guesses = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          requestToken(r.url, { clientId: client.id, secret: `guess-${i}`, headers: from(ip()) }),
        ),
      );
      expect(statuses(guesses)).toEqual({ 401: 40 });
      // The client still has its whole allowance: 10 tokens, then the limit.
      const own = await Promise.all(
        Array.from({ length: 11 }, () =>
          requestToken(r.url, { clientId: client.id, secret: client.secret as string, headers: from(ip()) }),
        ),
      );
      expect(statuses(own)).toEqual({ 200: 10, 429: 1 });
    });

    it('counts every request from one IP, failed authentications included: 20 of 40, then 429 even for a good secret', async () => {
      const client = await createTestClient(r.gql, rAdmin, { id: clientId('ip'), scopes: ['storage.read'] });
      const address = ip();
      const responses = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          requestToken(r.url, { clientId: client.id, secret: `guess-${i}`, headers: from(address) }),
        ),
      );
      expect(statuses(responses)).toEqual({ 401: 20, 429: 20 });
      const blocked = await requestToken(r.url, {
        clientId: client.id,
        secret: client.secret as string,
        headers: from(address),
      });
      expectRefusal(blocked, 429, 'temporarily_unavailable', [client.secret as string]);
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      const elsewhere = await requestToken(r.url, {
        clientId: client.id,
        secret: client.secret as string,
        headers: from(ip()),
      });
      expect(elsewhere.status).toBe(200);
    });
  });
});
