// The verifier package (graphql-auth-verifier) against the real server, SQLite and MariaDB: it verifies our tokens
// through the JWKS, refuses revoked sessions and disabled clients as soon as the revocation feed says so (and ones
// revoked before it started), fails closed with REVOCATION_FEED_STALE when the server has been gone longer than
// maxStaleness and recovers when it is back; algorithms are pinned; the testing issuer and the Yoga plugin work.
import { createHmac, createPublicKey, type JsonWebKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSchema, createYoga } from 'graphql-yoga';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authenticate,
  createTokenVerifier,
  TokenVerificationError,
  type TokenVerifier,
  useTokenVerifier,
  type VerifiedClaims,
} from '../packages/verifier/src/index.ts';
import { createTestIssuer } from '../packages/verifier/src/testing.ts';
import { signInAsAdmin } from './support/admin.ts';
import { databaseUrl, dialects, startTestApp, type TestApp } from './support/app.ts';
import { type CreatedClient, createTestClient, serviceToken } from './support/client-credentials.ts';
import { ed25519Pem } from './support/expect.ts';
import { type Payload, registerUser, revokeSession, signIn } from './support/graphql.ts';
import { freePort } from './support/services.ts';
import { eventually } from './support/subscriptions.ts';

const ISSUER = 'https://auth.test';
const AUDIENCE = 'https://api.test';
const SET_CLIENT_DISABLED = 'mutation($id: ID!, $d: Boolean!) { setClientDisabled(id: $id, disabled: $d) { id } }';

/** The reason `promise` was refused with; fails the test when it resolves or fails otherwise. */
async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(TokenVerificationError);
    expect((error as TokenVerificationError).code).toBe('UNAUTHENTICATED');
    return (error as TokenVerificationError).reason;
  }
  throw new Error('the token was accepted');
}

/** A verifier reading the feed of `t` as `client`. */
function verifierFor(t: TestApp, client: CreatedClient, maxStaleness = 30_000): TokenVerifier {
  return createTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    graphqlUrl: `${t.url}/graphql`,
    clientId: client.id,
    clientSecret: client.secret ?? '',
    maxStaleness,
  });
}

describe.each(dialects())('createTokenVerifier against the server (%s)', (dialect) => {
  let t: TestApp;
  let admin: Payload;
  let feedClient: CreatedClient;
  let verifier: TokenVerifier;
  const verifiers: TokenVerifier[] = [];

  beforeAll(async () => {
    t = await startTestApp({ dialect });
    admin = await signInAsAdmin(t);
    feedClient = await createTestClient(t.gql, admin.accessToken, { id: 'orders-api', scopes: ['sessions:feed'] });
    verifier = verifierFor(t, feedClient);
    verifiers.push(verifier);
  }, 60_000);

  afterAll(async () => {
    for (const v of verifiers) v.close();
    await t?.close();
  });

  it('verifies a user token (waiting for the first revocation list) and a service token', async () => {
    const user = await registerUser(t.gql);
    // Called at once: the first list is not read yet, and verify waits for it instead of deciding without it.
    const claims = await verifier.verify(user.accessToken);
    expect(verifier.status().connected).toBe(true);
    expect(claims).toMatchObject({
      kind: 'user',
      iss: ISSUER,
      aud: AUDIENCE,
      sub: user.user.id,
      sid: user.session.id,
      client_id: 'default',
      roles: ['USER'],
    });
    expect([...claims.scopes].sort()).toEqual(['profile:read', 'profile:write', 'sessions:read', 'sessions:write']);

    const service = await serviceToken(t.url, feedClient);
    expect(await verifier.verify(service)).toMatchObject({
      kind: 'service',
      sub: 'orders-api',
      client_id: 'orders-api',
    });
    expect((await verifier.verify(service)).scopes.has('sessions:feed')).toBe(true);
  });

  it('refuses a token of a session logged out, with SESSION_REVOKED, on the first call after the response', async () => {
    for (let trial = 0; trial < 5; trial++) {
      const user = await registerUser(t.gql);
      expect((await verifier.verify(user.accessToken)).sub).toBe(user.user.id);
      const logout = await t.gql('mutation { logout }', {}, { token: user.accessToken });
      expect(logout.data).toEqual({ logout: true });
      expect(await refusal(verifier.verify(user.accessToken))).toBe('SESSION_REVOKED');
    }
  });

  it('refuses every token of a disabled client at once (CLIENT_DISABLED), and still after it is enabled again', async () => {
    const client = await createTestClient(t.gql, admin.accessToken, { id: 'doomed-service', scopes: ['orders.read'] });
    const app = await createTestClient(t.gql, admin.accessToken, { id: 'doomed-web', type: 'PUBLIC' });
    const user = await registerUser(t.gql);
    const signedIn = await t.gql<{ login: Payload }>(
      'mutation($input: LoginInput!) { login(input: $input) { accessToken } }',
      { input: { email: user.user.email, password: user.password, clientId: app.id } },
    );
    const userToken = signedIn.data?.login.accessToken as string;
    const service = await serviceToken(t.url, client);
    expect((await verifier.verify(service)).client_id).toBe('doomed-service');
    expect((await verifier.verify(userToken)).client_id).toBe('doomed-web');

    for (const id of [client.id, app.id]) {
      const disabled = await t.gql(SET_CLIENT_DISABLED, { id, d: true }, { token: admin.accessToken });
      expect(disabled.errors).toBeUndefined();
    }
    expect(await refusal(verifier.verify(service))).toBe('CLIENT_DISABLED');
    // The user's session was revoked with its client: the server answers SESSION_REVOKED for it, and so do we once
    // the session's revocation has arrived; the client's own revocation may arrive first.
    expect(['CLIENT_DISABLED', 'SESSION_REVOKED']).toContain(await refusal(verifier.verify(userToken)));
    const server = await t.gql('{ me { id } }', {}, { token: userToken });
    expect(server.errors?.[0]?.extensions).toEqual({ code: 'UNAUTHENTICATED', reason: 'SESSION_REVOKED' });

    // Enabled again, the client's tokens from before stay refused.
    const enabled = await t.gql(SET_CLIENT_DISABLED, { id: client.id, d: false }, { token: admin.accessToken });
    expect(enabled.errors).toBeUndefined();
    expect(await refusal(verifier.verify(service))).toBe('CLIENT_DISABLED');
  });

  it('refuses a token revoked before the verifier started (read from Query.revocations)', async () => {
    const user = await registerUser(t.gql);
    const other = await signIn(t.gql, user.user.email, user.password);
    const revoked = await revokeSession(t.gql, user.session.id, other.accessToken);
    expect(revoked.data).toEqual({ revokeSession: true });
    const late = verifierFor(t, feedClient);
    verifiers.push(late);
    expect(await refusal(late.verify(user.accessToken))).toBe('SESSION_REVOKED');
    expect((await late.verify(other.accessToken)).sid).toBe(other.session.id);
    expect(late.status()).toMatchObject({ connected: true, stalenessMs: 0 });
    expect(late.status().refusals.SESSION_REVOKED).toBe(1);
  });

  it('fails closed (REVOCATION_FEED_STALE) when it cannot read the feed, and says why without the secret', async () => {
    const wrong = verifierFor(t, { id: feedClient.id, secret: 'not-the-secret' }, 300);
    verifiers.push(wrong);
    const user = await registerUser(t.gql);
    expect(await refusal(wrong.verify(user.accessToken))).toBe('REVOCATION_FEED_STALE');
    const status = wrong.status();
    expect(status).toMatchObject({ connected: false, refusals: { REVOCATION_FEED_STALE: 1 } });
    expect(status.lastError).toBe('token request refused: HTTP 401 (invalid_client)');

    // A client without sessions:feed gets a token but no feed.
    const noFeed = await createTestClient(t.gql, admin.accessToken, { id: 'no-feed', scopes: ['orders.read'] });
    const refused = verifierFor(t, noFeed, 300);
    verifiers.push(refused);
    expect(await refusal(refused.verify(user.accessToken))).toBe('REVOCATION_FEED_STALE');
  });

  it('pins algorithms: an HS256 token signed with the public key, and an unsigned one, are INVALID_TOKEN', async () => {
    const user = await registerUser(t.gql);
    const [headerPart, payloadPart] = user.accessToken.split('.') as [string, string];
    const header = JSON.parse(Buffer.from(headerPart, 'base64url').toString('utf8'));
    const { keys } = (await (await fetch(`${t.url}/.well-known/jwks.json`)).json()) as { keys: JsonWebKey[] };
    const jwk = keys.find((key) => (key as { kid?: string }).kid === header.kid) as JsonWebKey;
    const publicPem = createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    for (const secret of [publicPem, Buffer.from(jwk.x as string, 'base64url'), JSON.stringify(jwk)]) {
      const forgedHeader = encode({ ...header, alg: 'HS256' });
      const signature = createHmac('sha256', secret).update(`${forgedHeader}.${payloadPart}`).digest('base64url');
      expect(await refusal(verifier.verify(`${forgedHeader}.${payloadPart}.${signature}`))).toBe('INVALID_TOKEN');
    }
    expect(await refusal(verifier.verify(`${encode({ ...header, alg: 'none' })}.${payloadPart}.`))).toBe(
      'INVALID_TOKEN',
    );
    // The genuine token still verifies; and a verifier may not be configured with HMAC or none at all.
    expect((await verifier.verify(user.accessToken)).sub).toBe(user.user.id);
    for (const algorithms of [['HS256'], ['none'], ['EdDSA', 'HS256'], []])
      expect(() => createTokenVerifier({ ...optionsOf(t), algorithms })).toThrow(TypeError);
  });

  it('refuses tokens for another audience or issuer, expired ones and garbage', async () => {
    const user = await registerUser(t.gql);
    const elsewhere = createTokenVerifier({ ...optionsOf(t), audience: 'https://other.test' });
    verifiers.push(elsewhere);
    expect(await refusal(elsewhere.verify(user.accessToken))).toBe('INVALID_TOKEN');
    const otherIssuer = createTokenVerifier({ ...optionsOf(t), issuer: 'https://evil.test' });
    verifiers.push(otherIssuer);
    expect(await refusal(otherIssuer.verify(user.accessToken))).toBe('INVALID_TOKEN');
    for (const garbage of ['', 'abc', 'a.b.c', `${user.accessToken}x`])
      expect(await refusal(verifier.verify(garbage))).toBe('INVALID_TOKEN');
  });

  function optionsOf(app: TestApp) {
    return {
      issuer: ISSUER,
      audience: AUDIENCE,
      graphqlUrl: `${app.url}/graphql`,
      clientId: feedClient.id,
      clientSecret: feedClient.secret ?? '',
    };
  }
});

describe('createTokenVerifier while the server is down and back (sqlite)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'verifier-outage-'));
  const key = ed25519Pem();
  let port: number;
  let url: string;
  let t: TestApp | undefined;
  let verifier: TokenVerifier;

  const start = async () => {
    t = await startTestApp({ databaseUrl: url, env: { PORT: String(port), JWT_PRIVATE_KEY: key } });
    return t;
  };

  beforeAll(async () => {
    port = await freePort();
    url = await databaseUrl('sqlite', dir);
  });

  afterAll(async () => {
    verifier?.close();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses everything once the server has been gone longer than maxStaleness, and recovers when it is back', async () => {
    const app = await start();
    const admin = await signInAsAdmin(app);
    const client = await createTestClient(app.gql, admin.accessToken, { id: 'orders-api', scopes: ['sessions:feed'] });
    const user = await registerUser(app.gql);
    verifier = verifierFor(app, client, 3_000);
    expect((await verifier.verify(user.accessToken)).sub).toBe(user.user.id);

    await app.close();
    t = undefined;
    await eventually(() => !verifier.status().connected);
    // Within maxStaleness the last known revocations still decide; past it, nothing verifies.
    const outcome = () =>
      verifier.verify(user.accessToken).then(
        () => 'accepted',
        (error: TokenVerificationError) => error.reason,
      );
    expect(await outcome()).toBe('accepted');
    await eventually(async () => (await outcome()) === 'REVOCATION_FEED_STALE', 10_000);
    expect(verifier.status().stalenessMs).toBeGreaterThan(3_000);
    expect(verifier.status().connected).toBe(false);

    const back = await start();
    await eventually(() => verifier.status().connected, 15_000);
    expect((await verifier.verify(user.accessToken)).sub).toBe(user.user.id);
    // And the feed is live again: a logout on the restarted server is refused at once.
    const logout = await back.gql('mutation { logout }', {}, { token: user.accessToken });
    expect(logout.data).toEqual({ logout: true });
    expect(await refusal(verifier.verify(user.accessToken))).toBe('SESSION_REVOKED');

    verifier.close();
    expect(await refusal(verifier.verify(admin.accessToken))).toBe('REVOCATION_FEED_STALE');
  }, 60_000);
});

describe('createTokenVerifier renewing its feed token (sqlite, 3 s access tokens)', () => {
  let t: TestApp;
  let verifier: TokenVerifier | undefined;

  beforeAll(async () => {
    t = await startTestApp({ env: { ACCESS_TOKEN_TTL: '3s', JWT_CLOCK_TOLERANCE: '0s' } });
  });

  afterAll(async () => {
    verifier?.close();
    await t?.close();
  });

  it('fetches a new token before the old one expires and switches connections without a gap', async () => {
    const admin = await signInAsAdmin(t);
    const client = await createTestClient(t.gql, admin.accessToken, { id: 'orders-api', scopes: ['sessions:feed'] });
    const tokenRequests: string[] = [];
    verifier = createTokenVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      graphqlUrl: `${t.url}/graphql`,
      clientId: client.id,
      clientSecret: client.secret ?? '',
      fetch: (input, init) => {
        const url = String(input instanceof Request ? input.url : input);
        if (url.endsWith('/oauth/token')) tokenRequests.push(url);
        return fetch(input, init);
      },
    });
    const first = await registerUser(t.gql);
    expect((await verifier.verify(first.accessToken)).sub).toBe(first.user.id);
    // The server closes a feed socket when its token expires (every 3 s here): watch for 8 s that the verifier
    // never stops being connected.
    const until = Date.now() + 8_000;
    let disconnected = 0;
    while (Date.now() < until) {
      if (!verifier.status().connected) disconnected++;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(disconnected).toBe(0);
    expect(tokenRequests.length).toBeGreaterThanOrEqual(3);
    // The feed still works on the latest connection.
    const user = await registerUser(t.gql);
    expect((await verifier.verify(user.accessToken)).sub).toBe(user.user.id);
    expect((await t.gql('mutation { logout }', {}, { token: user.accessToken })).data).toEqual({ logout: true });
    expect(await refusal(verifier.verify(user.accessToken))).toBe('SESSION_REVOKED');
  }, 30_000);
});

describe('graphql-auth-verifier/testing and the plugin, without the server', () => {
  it('mints tokens of our shape that its verifier trusts, and revokes them by session or client', async () => {
    const issuer = await createTestIssuer();
    const token = await issuer.userToken({ userId: 'u1', sessionId: 's1', roles: ['USER', 'ADMIN'], scopes: ['a:b'] });
    const header = JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString('utf8'));
    expect(header).toEqual({ alg: 'EdDSA', typ: 'at+jwt', kid: issuer.jwks.keys[0]?.kid });
    const claims = await issuer.verifier.verify(token);
    expect(claims).toMatchObject({ kind: 'user', iss: 'https://auth.test', aud: 'https://api.test', sub: 'u1' });
    expect(claims).toMatchObject({ sid: 's1', client_id: 'default', roles: ['USER', 'ADMIN'], scope: 'a:b' });
    expect(Object.keys(claims).sort()).toEqual(
      ['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'kind', 'roles', 'scope', 'scopes', 'sid', 'sub'].sort(),
    );
    expect(claims.exp - claims.iat).toBe(900);

    const service = await issuer.serviceToken({ clientId: 'billing', scopes: ['users:read'] });
    expect(await issuer.verifier.verify(service)).toMatchObject({ kind: 'service', sub: 'billing' });

    issuer.verifier.revoke({ sessionId: 's1' });
    expect(await refusal(issuer.verifier.verify(token))).toBe('SESSION_REVOKED');
    issuer.verifier.revoke({ clientId: 'billing', reason: 'CLIENT_SECRET_ROTATED' });
    expect(await refusal(issuer.verifier.verify(service))).toBe('CLIENT_DISABLED');
    // A rotated secret ends the client's service tokens, not its users' (as the server does); disabling ends both.
    const billingUser = await issuer.userToken({ clientId: 'billing' });
    await issuer.verifier.verify(billingUser);
    issuer.verifier.revoke({ clientId: 'billing', reason: 'CLIENT_DISABLED' });
    expect(await refusal(issuer.verifier.verify(billingUser))).toBe('CLIENT_DISABLED');

    const expired = await issuer.userToken({ issuedAt: Date.now() - 3_600_000 });
    expect(await refusal(issuer.verifier.verify(expired))).toBe('TOKEN_EXPIRED');
    const foreign = await (await createTestIssuer()).userToken();
    expect(await refusal(issuer.verifier.verify(foreign))).toBe('INVALID_TOKEN');
    expect(await refusal(issuer.verifier.verify(await issuer.userToken({ audience: 'https://x.test' })))).toBe(
      'INVALID_TOKEN',
    );
    expect(issuer.verifier.status().refusals).toEqual({
      INVALID_TOKEN: 2,
      TOKEN_EXPIRED: 1,
      SESSION_REVOKED: 1,
      CLIENT_DISABLED: 2,
      REVOCATION_FEED_STALE: 0,
    });
  });

  it('useTokenVerifier puts the claims on context.auth in graphql-yoga; authenticate() reads a header', async () => {
    const issuer = await createTestIssuer();
    const yoga = createYoga<Record<string, unknown>, { auth: VerifiedClaims | null }>({
      schema: createSchema({
        typeDefs: 'type Query { whoami: String }',
        resolvers: { Query: { whoami: (_root: unknown, _args: unknown, context: any) => context.auth?.sub ?? null } },
      }),
      plugins: [useTokenVerifier(issuer.verifier)],
      logging: false,
    });
    const ask = async (authorization?: string) => {
      const response = await yoga.fetch('http://localhost/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
        body: JSON.stringify({ query: '{ whoami }' }),
      });
      return (await response.json()) as { data?: unknown; errors?: { extensions?: unknown }[] };
    };
    const token = await issuer.userToken({ userId: 'user-7', sessionId: 'session-7' });
    expect(await ask(`Bearer ${token}`)).toEqual({ data: { whoami: 'user-7' } });
    expect(await ask()).toEqual({ data: { whoami: null } });
    expect((await ask('Bearer nonsense')).errors?.[0]?.extensions).toEqual({
      code: 'UNAUTHENTICATED',
      reason: 'INVALID_TOKEN',
    });
    issuer.verifier.revoke({ sessionId: 'session-7' });
    const revoked = await ask(`Bearer ${token}`);
    expect(revoked.errors?.[0]?.extensions).toEqual({ code: 'UNAUTHENTICATED', reason: 'SESSION_REVOKED' });
    expect(revoked.data ?? null).toBeNull();

    expect(await authenticate(issuer.verifier, undefined)).toBeNull();
    const other = await issuer.userToken({ userId: 'user-8' });
    expect((await authenticate(issuer.verifier, `Bearer ${other}`))?.sub).toBe('user-8');
    expect(await refusal(authenticate(issuer.verifier, `Basic ${other}`))).toBe('INVALID_TOKEN');
  });
});
