// The verifier package and the server's revocation feed under attack, against the real server (SQLite and
// MariaDB): forged headers and claims signed with the server's own key, unknown key ids (no JWKS refetch storm),
// a rotated feed secret (fail closed, said without the secret), Authorization header tricks, close() while
// connecting, and the feed's own guards (no sessions:feed for a PUBLIC client, a disabled client's feed ends).
import { createPrivateKey, randomUUID, sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  authenticate,
  createTokenVerifier,
  TokenVerificationError,
  type TokenVerifier,
} from '../packages/verifier/src/index.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { type CreatedClient, createTestClient, serviceToken } from './support/client-credentials.ts';
import { ed25519Pem } from './support/expect.ts';
import { type Payload, registerUser } from './support/graphql.ts';
import { eventually, openClient } from './support/subscriptions.ts';

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

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const decode = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

describe.each(dialects())('the verifier package under attack (%s)', (dialect) => {
  const key = ed25519Pem();
  const privateKey = createPrivateKey(key);
  let t: TestApp;
  let admin: Payload;
  let feedClient: CreatedClient;
  let verifier: TokenVerifier;
  let jwksFetches = 0;
  const verifiers: TokenVerifier[] = [];

  const optionsFor = (client: CreatedClient, more: Partial<Parameters<typeof createTokenVerifier>[0]> = {}) => ({
    issuer: ISSUER,
    audience: AUDIENCE,
    graphqlUrl: `${t.url}/graphql`,
    clientId: client.id,
    clientSecret: client.secret ?? '',
    ...more,
  });
  const track = (v: TokenVerifier) => {
    verifiers.push(v);
    return v;
  };

  /** A token signed with the server's own key: the header and claims as given (what an insider could mint). */
  const forge = (header: Record<string, unknown>, claims: Record<string, unknown>) => {
    const signingInput = `${encode(header)}.${encode(claims)}`;
    return `${signingInput}.${sign(null, Buffer.from(signingInput), privateKey).toString('base64url')}`;
  };

  beforeAll(async () => {
    t = await startTestApp({ dialect, env: { JWT_PRIVATE_KEY: key } });
    admin = await signInAsAdmin(t);
    feedClient = await createTestClient(t.gql, admin.accessToken, { id: 'attacked-api', scopes: ['sessions:feed'] });
    verifier = track(
      createTokenVerifier(
        optionsFor(feedClient, {
          fetch: (input, init) => {
            if (String(input).endsWith('/.well-known/jwks.json')) jwksFetches++;
            return fetch(input, init);
          },
        }),
      ),
    );
  }, 60_000);

  afterAll(async () => {
    for (const v of verifiers) v.close();
    await t?.close();
  });

  it('refuses a flood of unknown key ids without refetching the JWKS for each', async () => {
    const user = await registerUser(t.gql);
    expect((await verifier.verify(user.accessToken)).sub).toBe(user.user.id);
    const [headerPart, payloadPart, signature] = user.accessToken.split('.') as [string, string, string];
    const before = jwksFetches;
    const forged = Array.from({ length: 50 }, () => {
      return `${encode({ ...decode(headerPart), kid: randomUUID() })}.${payloadPart}.${signature}`;
    });
    const reasons = await Promise.all(forged.map((token) => refusal(verifier.verify(token))));
    expect(new Set(reasons)).toEqual(new Set(['INVALID_TOKEN']));
    // jose's cooldown: at most one refetch for the whole flood.
    expect(jwksFetches - before).toBeLessThanOrEqual(1);
    expect((await verifier.verify(user.accessToken)).sub).toBe(user.user.id);
  });

  it('refuses header tricks signed with the real key: crit, typ missing or wrong, an embedded jwk', async () => {
    const user = await registerUser(t.gql);
    const [headerPart, payloadPart] = user.accessToken.split('.') as [string, string];
    const header = decode(headerPart);
    const claims = decode(payloadPart);
    // The genuine shape, re-signed, verifies: what follows is refused for its header alone.
    expect((await verifier.verify(forge(header, claims))).sub).toBe(user.user.id);
    const { typ: _typ, ...untyped } = header;
    for (const bad of [
      { ...header, crit: ['exp'] },
      { ...header, crit: ['x-unknown'], 'x-unknown': 1 },
      untyped,
      { ...header, typ: 'JWT' },
      { ...header, alg: 'ES256' },
      { ...header, b64: false, crit: ['b64'] },
    ])
      expect(await refusal(verifier.verify(forge(bad, claims)))).toBe('INVALID_TOKEN');
    expect(await refusal(verifier.verify(`${'a'.repeat(2_000_000)}.${payloadPart}.x`))).toBe('INVALID_TOKEN');
  });

  it('refuses claim tricks signed with the real key: no client_id, a future iat, a service token of another client', async () => {
    const user = await registerUser(t.gql);
    const [headerPart, payloadPart] = user.accessToken.split('.') as [string, string];
    const header = decode(headerPart);
    const claims = decode(payloadPart);
    const now = Math.floor(Date.now() / 1000);
    const { client_id: _clientId, ...noClient } = claims;
    const { sid: _sid, roles: _roles, ...serviceShaped } = claims;
    for (const bad of [
      noClient,
      { ...claims, iat: now + 60, exp: now + 900 },
      { ...claims, sid: 42 },
      { ...claims, roles: 'ADMIN' },
      { ...claims, exp: String(claims.exp) },
      // Without sid and roles it reads as a service token: sub must then be its own client.
      serviceShaped,
    ])
      expect(await refusal(verifier.verify(forge(header, bad)))).toBe('INVALID_TOKEN');

    // A revoked session stays revoked whatever client_id a token of it names.
    const logout = await t.gql('mutation { logout }', {}, { token: user.accessToken });
    expect(logout.data).toEqual({ logout: true });
    expect(await refusal(verifier.verify(user.accessToken))).toBe('SESSION_REVOKED');
    expect(await refusal(verifier.verify(forge(header, { ...claims, client_id: 'attacked-api' })))).toBe(
      'SESSION_REVOKED',
    );
  });

  it('reads Authorization headers strictly: lowercase bearer works, other schemes and two tokens do not', async () => {
    const user = await registerUser(t.gql);
    expect((await authenticate(verifier, `bearer ${user.accessToken}`))?.sub).toBe(user.user.id);
    expect(await authenticate(verifier, undefined)).toBeNull();
    for (const header of [
      `Basic ${user.accessToken}`,
      `Bearer ${user.accessToken}, Bearer ${user.accessToken}`,
      `Bearer ${user.accessToken},Bearer ${user.accessToken}`,
      `Bearer ${user.accessToken} extra`,
      'Bearer',
      `Token ${user.accessToken}`,
    ])
      expect(await refusal(authenticate(verifier, header))).toBe('INVALID_TOKEN');
  });

  it('fails closed after a rotated feed secret, saying why without the secret; new service tokens verify', async () => {
    const client = await createTestClient(t.gql, admin.accessToken, { id: 'rotated-api', scopes: ['sessions:feed'] });
    const rotating = track(createTokenVerifier(optionsFor(client, { maxStaleness: 1_500 })));
    const user = await registerUser(t.gql);
    expect((await rotating.verify(user.accessToken)).sub).toBe(user.user.id);
    const old = await serviceToken(t.url, client);
    const rotated = await t.gql<{ rotateClientSecret: { clientSecret: string } }>(
      'mutation($id: ID!) { rotateClientSecret(id: $id) { clientSecret } }',
      { id: client.id },
      { token: admin.accessToken },
    );
    expect(rotated.errors).toBeUndefined();
    const secret = rotated.data?.rotateClientSecret.clientSecret as string;
    // Its own old service token is refused at once by another verifier; one issued after the rotation is not.
    expect(await refusal(verifier.verify(old))).toBe('CLIENT_DISABLED');
    const fresh = await serviceToken(t.url, { id: client.id, secret });
    expect((await verifier.verify(fresh)).client_id).toBe('rotated-api');

    await eventually(async () => {
      try {
        await rotating.verify(user.accessToken);
        return false;
      } catch (error) {
        return (error as TokenVerificationError).reason === 'REVOCATION_FEED_STALE';
      }
    }, 15_000);
    const status = rotating.status();
    expect(status.connected).toBe(false);
    expect(status.lastError).toMatch(/HTTP 401/);
    for (const s of [client.secret as string, secret]) expect(JSON.stringify(status)).not.toContain(s);
  });

  it('close() while connecting: verify fails closed at once and nothing connects afterwards', async () => {
    const closing = createTokenVerifier(optionsFor(feedClient));
    closing.close();
    const user = await registerUser(t.gql);
    expect(await refusal(closing.verify(user.accessToken))).toBe('REVOCATION_FEED_STALE');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(closing.status().connected).toBe(false);
  });

  it('will not let a PUBLIC client declare sessions:feed, and ends the feed of a client disabled', async () => {
    const refused = await t.gql(
      'mutation($input: CreateClientInput!) { createClient(input: $input) { client { id } } }',
      { input: { id: 'public-feed', name: 'p', type: 'PUBLIC', scopes: ['sessions:feed'] } },
      { token: admin.accessToken },
    );
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });

    const client = await createTestClient(t.gql, admin.accessToken, { id: 'ended-api', scopes: ['sessions:feed'] });
    const token = await serviceToken(t.url, client);
    const { client: ws, closed } = openClient(t.url, token);
    const events: unknown[] = [];
    let completed = false;
    ws.subscribe(
      { query: 'subscription { revocations { sessionId clientId userId reason revokedAt tokensExpireBy } }' },
      { next: (event) => events.push(event), error: () => {}, complete: () => (completed = true) },
    );
    const list = await t.gql<{ revocations: Record<string, unknown>[] }>(
      '{ revocations { sessionId clientId userId reason revokedAt tokensExpireBy } }',
      {},
      { token },
    );
    expect(list.errors).toBeUndefined();
    for (const entry of list.data?.revocations ?? [])
      expect(Object.keys(entry).sort()).toEqual(
        ['clientId', 'reason', 'revokedAt', 'sessionId', 'tokensExpireBy', 'userId'].sort(),
      );
    // Operations racing the disablement: each ends with the socket closed 4403, never an internal error.
    const internal = vi.spyOn(console, 'error');
    try {
      const racing = Array.from({ length: 10 }, () => openClient(t.url, token));
      await Promise.all(
        racing.map(({ client: c }) =>
          c.subscribe(
            { query: '{ revocations { sessionId } }' },
            { next: () => {}, error: () => {}, complete: () => {} },
          ),
        ),
      );
      const disabled = t.gql(SET_CLIENT_DISABLED, { id: client.id, d: true }, { token: admin.accessToken });
      for (let round = 0; round < 20; round++)
        for (const { client: c } of racing)
          c.subscribe(
            { query: '{ revocations { sessionId } }' },
            { next: () => {}, error: () => {}, complete: () => {} },
          );
      expect((await disabled).errors).toBeUndefined();
      await eventually(() => completed, 5_000);
      const closeCodes = await Promise.all([closed, ...racing.map(({ closed: c }) => c)]);
      expect(new Set(closeCodes)).toEqual(new Set([4403]));
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(internal.mock.calls.filter((call) => String(call[0]).includes('Internal error'))).toEqual([]);
    } finally {
      internal.mockRestore();
    }
    const after = await t.gql('{ revocations { sessionId } }', {}, { token });
    expect(after.errors?.[0]?.extensions).toEqual({ code: 'UNAUTHENTICATED', reason: 'CLIENT_DISABLED' });
  });
});
