import { createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVerifier } from 'fast-jwt';
import {
  base64url,
  calculateJwkThumbprint,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  type JWK,
  SignJWT,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { TestClock } from './support/clock.ts';
import { expectUnauthenticated } from './support/expect.ts';
import { loginUser, type Payload, registerUser } from './support/graphql.ts';

const ISSUER = 'https://auth.test';
const AUDIENCE = 'https://api.test';
const USER_SCOPE = 'profile:read profile:write sessions:read sessions:write';
const FIFTEEN_MINUTES_S = 15 * 60;
const ME = '{ me { id } }';

type AsymmetricAlg = 'EdDSA' | 'ES256' | 'RS256';

interface TestKey {
  readonly alg: AsymmetricAlg;
  readonly privateKey: KeyObject;
  readonly privatePem: string;
  readonly publicPem: string;
  /** The RFC 7638 thumbprint of the public key: the kid the service derives for it. */
  readonly kid: string;
}

async function generateKey(alg: AsymmetricAlg): Promise<TestKey> {
  const { privateKey, publicKey } =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    alg,
    privateKey,
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    kid: await calculateJwkThumbprint(await exportJWK(publicKey)),
  };
}

async function getJson(url: string): Promise<{ status: number; contentType: string | null; body: any }> {
  const response = await fetch(url);
  return { status: response.status, contentType: response.headers.get('content-type'), body: await response.json() };
}

async function jwksOf(t: TestApp): Promise<{ keys: JWK[] }> {
  return (await getJson(`${t.url}/.well-known/jwks.json`)).body;
}

/** The PEM (SPKI) of a public key as published in a JWK Set. */
const pemOfJwk = (jwk: JWK) =>
  createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' })
    .export({ type: 'spki', format: 'pem' })
    .toString();

const me = (t: TestApp, authorization?: string) =>
  t.gql<{ me: { id: string } | null }>(ME, {}, authorization === undefined ? {} : { headers: { authorization } });

const encodeSegment = (value: unknown) => base64url.encode(JSON.stringify(value));

/** Claims that the service would accept for this user, minted by the test itself. */
function claimsFor(user: Payload, nowS = Math.floor(Date.now() / 1000)) {
  return {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: user.user.id,
    sid: user.session.id,
    jti: crypto.randomUUID(),
    iat: nowS,
    exp: nowS + FIFTEEN_MINUTES_S,
    scope: USER_SCOPE,
    roles: ['USER'],
  };
}

async function sign(
  claims: Record<string, unknown>,
  header: { alg: string; kid?: string; typ?: string },
  key: KeyObject | Uint8Array,
): Promise<string> {
  return new SignJWT(claims).setProtectedHeader(header).sign(key);
}

describe.each(['EdDSA', 'ES256', 'RS256'] as const)('%s access tokens', (alg) => {
  let key: TestKey;
  let t: TestApp;
  beforeAll(async () => {
    key = await generateKey(alg);
    t = await startTestApp({ env: { JWT_ALG: alg, JWT_PRIVATE_KEY: key.privatePem } });
  });
  afterAll(() => t?.close());

  it('mints an RFC 9068 token that fast-jwt verifies with the key from the JWKS', async () => {
    const user = await registerUser(t.gql);
    const { keys } = await jwksOf(t);
    expect(keys).toHaveLength(1);
    const jwk = keys[0]!;
    expect(jwk.kid).toBe(key.kid);

    const verify = createVerifier({
      key: pemOfJwk(jwk),
      algorithms: [alg],
      allowedIss: ISSUER,
      allowedAud: AUDIENCE,
      checkTyp: 'at+jwt',
      requiredClaims: ['iss', 'aud', 'sub', 'client_id', 'sid', 'jti', 'iat', 'exp', 'scope', 'roles'],
      complete: true,
    });
    const { header, payload } = verify(user.accessToken);
    expect(header).toEqual({ alg, kid: key.kid, typ: 'at+jwt' });
    expect(payload).toEqual({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: user.user.id,
      client_id: 'default',
      sid: user.session.id,
      jti: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
      iat: expect.any(Number),
      exp: payload.iat + FIFTEEN_MINUTES_S,
      scope: USER_SCOPE,
      roles: ['USER'],
    });
    expect(Math.abs(payload.iat - Date.now() / 1000)).toBeLessThan(60);
    expect(new Date(payload.exp * 1000).toISOString()).toBe(new Date(user.accessTokenExpiresAt).toISOString());
  });

  it('gives every token its own jti', async () => {
    const user = await registerUser(t.gql);
    const again = await loginUser(t.gql, user.user.email, user.password);
    expect(decodeJwt(again.data!.login.accessToken).jti).not.toBe(decodeJwt(user.accessToken).jti);
  });

  it('publishes the configured public key, and only its public part, in the JWKS', async () => {
    const response = await getJson(`${t.url}/.well-known/jwks.json`);
    expect(response.status).toBe(200);
    expect(response.contentType).toBe('application/json');
    const [jwk] = response.body.keys as JWK[];
    expect(jwk).toMatchObject({ kid: key.kid, alg, use: 'sig' });
    for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(jwk).not.toHaveProperty(secret);
    expect(pemOfJwk(jwk!)).toBe(key.publicPem);
  });
});

describe('HS256 access tokens', () => {
  const secret = randomBytes(32).toString('base64url');
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { JWT_ALG: 'HS256', JWT_PRIVATE_KEY: secret } });
  });
  afterAll(() => t?.close());

  it('publishes no key, since the secret is shared', async () => {
    const response = await getJson(`${t.url}/.well-known/jwks.json`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ keys: [] });
  });

  it('mints a token that fast-jwt verifies with the shared secret', async () => {
    const user = await registerUser(t.gql);
    const verify = createVerifier({
      key: secret,
      algorithms: ['HS256'],
      allowedIss: ISSUER,
      allowedAud: AUDIENCE,
      checkTyp: 'at+jwt',
      complete: true,
    });
    const { header, payload } = verify(user.accessToken);
    expect(header).toEqual({ alg: 'HS256', kid: expect.any(String), typ: 'at+jwt' });
    expect(payload).toMatchObject({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: user.user.id,
      sid: user.session.id,
      exp: payload.iat + FIFTEEN_MINUTES_S,
      scope: USER_SCOPE,
      roles: ['USER'],
    });
    expect((await me(t, `Bearer ${user.accessToken}`)).data).toEqual({ me: { id: user.user.id } });
  });

  it('refuses an HS256 token signed with another secret under the same kid', async () => {
    const user = await registerUser(t.gql);
    const { kid } = decodeProtectedHeader(user.accessToken);
    const forged = await sign(
      claimsFor(user),
      { alg: 'HS256', kid: kid!, typ: 'at+jwt' },
      new TextEncoder().encode(randomBytes(32).toString('base64url')),
    );
    expectUnauthenticated(await me(t, `Bearer ${forged}`), 'INVALID_TOKEN');
  });
});

describe('metadata', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { PUBLIC_URL: 'https://login.example.com/' } });
  });
  afterAll(() => t?.close());

  it('serves RFC 8414 metadata naming the issuer and the JWKS location', async () => {
    const response = await getJson(`${t.url}/.well-known/oauth-authorization-server`);
    expect(response.status).toBe(200);
    expect(response.contentType).toBe('application/json');
    expect(response.body).toMatchObject({
      issuer: ISSUER,
      jwks_uri: 'https://login.example.com/.well-known/jwks.json',
    });
  });

  it('publishes the generated EdDSA key with kid, alg and use', async () => {
    const { keys } = await jwksOf(t);
    expect(keys).toEqual([
      { kty: 'OKP', crv: 'Ed25519', x: expect.any(String), kid: expect.any(String), alg: 'EdDSA', use: 'sig' },
    ]);
    expect(keys[0]!.kid).toBe(await calculateJwkThumbprint(keys[0]!));
  });
});

describe('forged and invalid access tokens', () => {
  let key: TestKey;
  let t: TestApp;
  let user: Payload;
  beforeAll(async () => {
    key = await generateKey('EdDSA');
    t = await startTestApp({ env: { JWT_PRIVATE_KEY: key.privatePem } });
    user = await registerUser(t.gql);
  });
  afterAll(() => t?.close());

  const header = () => ({ alg: 'EdDSA', kid: key.kid, typ: 'at+jwt' });

  it('accepts a token the test signs itself with the configured key (the forgeries below differ in one thing)', async () => {
    const token = await sign(claimsFor(user), header(), key.privateKey);
    const response = await me(t, `Bearer ${token}`);
    expect(response.data).toEqual({ me: { id: user.user.id } });
    expect(response.errors).toBeUndefined();
  });

  it('treats a request without an Authorization header as anonymous', async () => {
    const response = await me(t);
    expect(response.data).toEqual({ me: null });
    expect(response.errors).toBeUndefined();
  });

  it('refuses an unsigned token (alg none)', async () => {
    const token = `${encodeSegment({ alg: 'none', typ: 'at+jwt', kid: key.kid })}.${encodeSegment(claimsFor(user))}.`;
    expectUnauthenticated(await me(t, `Bearer ${token}`), 'INVALID_TOKEN');
  });

  it('refuses an HS256 token signed with the public key PEM under the real kid', async () => {
    const token = await sign(
      claimsFor(user),
      { alg: 'HS256', kid: key.kid, typ: 'at+jwt' },
      new TextEncoder().encode(key.publicPem),
    );
    expectUnauthenticated(await me(t, `Bearer ${token}`), 'INVALID_TOKEN');
  });

  it('refuses an HS256 token signed with the public key DER or the JWK x bytes under the real kid', async () => {
    const der = createPublicKey(key.publicPem).export({ type: 'spki', format: 'der' });
    const x = base64url.decode((await jwksOf(t)).keys[0]!.x!);
    for (const secret of [new Uint8Array(der), x]) {
      const token = await sign(claimsFor(user), { alg: 'HS256', kid: key.kid, typ: 'at+jwt' }, secret);
      expectUnauthenticated(await me(t, `Bearer ${token}`), 'INVALID_TOKEN');
    }
  });

  it('refuses a token from another issuer', async () => {
    const token = await sign({ ...claimsFor(user), iss: 'https://evil.test' }, header(), key.privateKey);
    expectUnauthenticated(await me(t, `Bearer ${token}`), 'INVALID_TOKEN');
  });

  it('refuses a token for another audience', async () => {
    const token = await sign({ ...claimsFor(user), aud: 'https://other-api.test' }, header(), key.privateKey);
    expectUnauthenticated(await me(t, `Bearer ${token}`), 'INVALID_TOKEN');
  });

  it('refuses an expired token with reason TOKEN_EXPIRED', async () => {
    const past = Math.floor(Date.now() / 1000) - 3600;
    const token = await sign(claimsFor(user, past), header(), key.privateKey);
    expectUnauthenticated(await me(t, `Bearer ${token}`), 'TOKEN_EXPIRED');
  });

  it('refuses a token signed with our key whose lifetime exceeds the configured one plus the tolerance', async () => {
    const nowS = Math.floor(Date.now() / 1000);
    // iat is nowS itself: a second boundary crossed between two readings of the clock would shorten the lifetime.
    const tenYears = await sign({ ...claimsFor(user, nowS), exp: nowS + 10 * 365 * 86_400 }, header(), key.privateKey);
    expectUnauthenticated(await me(t, `Bearer ${tenYears}`), 'INVALID_TOKEN');
    // The bound is the lifetime plus the 5 s tolerance, to the second.
    const justOver = await sign(
      { ...claimsFor(user, nowS), exp: nowS + FIFTEEN_MINUTES_S + 6 },
      header(),
      key.privateKey,
    );
    expectUnauthenticated(await me(t, `Bearer ${justOver}`), 'INVALID_TOKEN');
    const atBound = await sign(
      { ...claimsFor(user, nowS), exp: nowS + FIFTEEN_MINUTES_S + 5 },
      header(),
      key.privateKey,
    );
    expect((await me(t, `Bearer ${atBound}`)).data).toEqual({ me: { id: user.user.id } });
  });

  it('refuses a token that claims to be issued in the future', async () => {
    const later = Math.floor(Date.now() / 1000) + 3600;
    const token = await sign(claimsFor(user, later), header(), key.privateKey);
    expectUnauthenticated(await me(t, `Bearer ${token}`), 'INVALID_TOKEN');
  });

  it('refuses a real token whose payload was changed after signing', async () => {
    const [head, payload, signature] = user.accessToken.split('.');
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload!)));
    const escalated = encodeSegment({ ...claims, roles: ['USER', 'ADMIN'] });
    expectUnauthenticated(await me(t, `Bearer ${head}.${escalated}.${signature}`), 'INVALID_TOKEN');
  });

  it('refuses a token whose typ is JWT rather than at+jwt, or missing', async () => {
    const jwt = await sign(claimsFor(user), { ...header(), typ: 'JWT' }, key.privateKey);
    expectUnauthenticated(await me(t, `Bearer ${jwt}`), 'INVALID_TOKEN');
    const untyped = await sign(claimsFor(user), { alg: 'EdDSA', kid: key.kid }, key.privateKey);
    expectUnauthenticated(await me(t, `Bearer ${untyped}`), 'INVALID_TOKEN');
  });

  it('refuses a token with an unknown kid or none', async () => {
    const unknown = await sign(claimsFor(user), { ...header(), kid: 'no-such-key' }, key.privateKey);
    expectUnauthenticated(await me(t, `Bearer ${unknown}`), 'INVALID_TOKEN');
    const kidless = await sign(claimsFor(user), { alg: 'EdDSA', typ: 'at+jwt' }, key.privateKey);
    expectUnauthenticated(await me(t, `Bearer ${kidless}`), 'INVALID_TOKEN');
  });

  it('refuses a token signed by another key that claims the real kid', async () => {
    const other = await generateKey('EdDSA');
    const token = await sign(claimsFor(user), header(), other.privateKey);
    expectUnauthenticated(await me(t, `Bearer ${token}`), 'INVALID_TOKEN');
  });

  it('refuses a correctly signed token that lacks sid or carries an unknown role', async () => {
    const { sid: _sid, ...withoutSid } = claimsFor(user);
    const noSid = await sign(withoutSid, header(), key.privateKey);
    expectUnauthenticated(await me(t, `Bearer ${noSid}`), 'INVALID_TOKEN');
    const root = await sign({ ...claimsFor(user), roles: ['ROOT'] }, header(), key.privateKey);
    expectUnauthenticated(await me(t, `Bearer ${root}`), 'INVALID_TOKEN');
  });

  it('refuses garbage bearer values', async () => {
    for (const value of ['not-a-jwt', 'a.b.c', 'e30.e30.', `${user.accessToken}x`, '']) {
      expectUnauthenticated(await me(t, `Bearer ${value}`), 'INVALID_TOKEN');
    }
  });

  it('refuses an Authorization header with another scheme', async () => {
    expectUnauthenticated(await me(t, 'Basic xyz'), 'INVALID_TOKEN');
    expectUnauthenticated(await me(t, `Token ${user.accessToken}`), 'INVALID_TOKEN');
  });

  it('refuses the token of a logged-out session at once, before it expires', async () => {
    const other = await registerUser(t.gql);
    const logout = await t.gql('mutation { logout }', {}, { token: other.accessToken });
    expect(logout.data).toEqual({ logout: true });
    expectUnauthenticated(await me(t, `Bearer ${other.accessToken}`), 'SESSION_REVOKED');
  });
});

describe('key rotation', () => {
  let keyA: TestKey;
  let keyB: TestKey;
  let oldApp: TestApp;
  let newApp: TestApp;
  let user: Payload & { password: string };
  beforeAll(async () => {
    keyA = await generateKey('EdDSA');
    keyB = await generateKey('EdDSA');
    oldApp = await startTestApp({ env: { JWT_PRIVATE_KEY: keyA.privatePem } });
    user = await registerUser(oldApp.gql);
    newApp = await startTestApp({
      databaseUrl: oldApp.databaseUrl,
      env: { JWT_PRIVATE_KEY: keyB.privatePem, JWT_PREVIOUS_KEYS: keyA.privatePem },
    });
  });
  afterAll(async () => {
    await newApp?.close();
    await oldApp?.close();
  });

  it('accepts a token signed with the previous key', async () => {
    expect(decodeProtectedHeader(user.accessToken).kid).toBe(keyA.kid);
    const response = await me(newApp, `Bearer ${user.accessToken}`);
    expect(response.data).toEqual({ me: { id: user.user.id } });
    expect(response.errors).toBeUndefined();
  });

  it('refuses a token signed with the previous key whose lifetime exceeds the configured one', async () => {
    const nowS = Math.floor(Date.now() / 1000);
    const token = await sign(
      { ...claimsFor(user, nowS), exp: nowS + 10 * 365 * 86_400 },
      { alg: 'EdDSA', kid: keyA.kid, typ: 'at+jwt' },
      keyA.privateKey,
    );
    expectUnauthenticated(await me(newApp, `Bearer ${token}`), 'INVALID_TOKEN');
  });

  it('publishes the signing key first and the previous key after it, both public only', async () => {
    const { keys } = await jwksOf(newApp);
    expect(keys.map((k) => k.kid)).toEqual([keyB.kid, keyA.kid]);
    for (const jwk of keys) {
      expect(jwk).toMatchObject({ alg: 'EdDSA', use: 'sig' });
      expect(jwk).not.toHaveProperty('d');
    }
  });

  it('signs new tokens with the new key', async () => {
    const login = await loginUser(newApp.gql, user.user.email, user.password);
    const token = login.data!.login.accessToken;
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'EdDSA', kid: keyB.kid, typ: 'at+jwt' });
    expect((await me(newApp, `Bearer ${token}`)).data).toEqual({ me: { id: user.user.id } });
  });

  it('lets another service verify old and new tokens through the JWKS by kid', async () => {
    const { keys } = await jwksOf(newApp);
    const verifyWithJwks = (token: string) =>
      createVerifier({
        key: async ({ header }: { header: { kid?: string } }) => pemOfJwk(keys.find((k) => k.kid === header.kid)!),
        algorithms: ['EdDSA'],
        allowedIss: ISSUER,
        allowedAud: AUDIENCE,
      })(token);
    const login = await loginUser(newApp.gql, user.user.email, user.password);
    expect((await verifyWithJwks(user.accessToken)).sub).toBe(user.user.id);
    expect((await verifyWithJwks(login.data!.login.accessToken)).sub).toBe(user.user.id);
  });

  it('refuses a token signed with a key that is neither current nor previous', async () => {
    const stranger = await generateKey('EdDSA');
    for (const kid of [stranger.kid, keyA.kid, keyB.kid]) {
      const token = await sign(claimsFor(user), { alg: 'EdDSA', kid, typ: 'at+jwt' }, stranger.privateKey);
      expectUnauthenticated(await me(newApp, `Bearer ${token}`), 'INVALID_TOKEN');
    }
  });

  it('accepts previous keys given as public PEMs, several in one variable', async () => {
    const retired = await generateKey('RS256');
    const app = await startTestApp({
      databaseUrl: oldApp.databaseUrl,
      env: { JWT_PRIVATE_KEY: keyB.privatePem, JWT_PREVIOUS_KEYS: `${retired.publicPem}\n${keyA.publicPem}` },
    });
    try {
      expect((await jwksOf(app)).keys.map((k) => [k.kid, k.alg])).toEqual([
        [keyB.kid, 'EdDSA'],
        [retired.kid, 'RS256'],
        [keyA.kid, 'EdDSA'],
      ]);
      expect((await me(app, `Bearer ${user.accessToken}`)).data).toEqual({ me: { id: user.user.id } });
      const rs256 = await sign(claimsFor(user), { alg: 'RS256', kid: retired.kid, typ: 'at+jwt' }, retired.privateKey);
      expect((await me(app, `Bearer ${rs256}`)).data).toEqual({ me: { id: user.user.id } });
    } finally {
      await app.close();
    }
  });

  it('accepts a previous key across a change of algorithm, pinned to its own algorithm', async () => {
    const keyC = await generateKey('ES256');
    const es256App = await startTestApp({
      databaseUrl: oldApp.databaseUrl,
      env: { JWT_ALG: 'ES256', JWT_PRIVATE_KEY: keyC.privatePem, JWT_PREVIOUS_KEYS: keyA.publicPem },
    });
    try {
      expect((await me(es256App, `Bearer ${user.accessToken}`)).data).toEqual({ me: { id: user.user.id } });
      const { keys } = await jwksOf(es256App);
      expect(keys.map((k) => [k.kid, k.alg])).toEqual([
        [keyC.kid, 'ES256'],
        [keyA.kid, 'EdDSA'],
      ]);
      // The previous key keeps its own algorithm: an ES256 token may not borrow its kid.
      const borrowed = await sign(claimsFor(user), { alg: 'ES256', kid: keyA.kid, typ: 'at+jwt' }, keyC.privateKey);
      expectUnauthenticated(await me(es256App, `Bearer ${borrowed}`), 'INVALID_TOKEN');
    } finally {
      await es256App.close();
    }
  });
});

describe('clock tolerance', () => {
  // A whole second, so that iat and exp land exactly where the arithmetic below says.
  const start = Math.ceil(Date.now() / 1000) * 1000;

  it('accepts a token expired by less than the default 5 s tolerance and refuses one beyond', async () => {
    const clock = new TestClock(start);
    const t = await startTestApp({ clock });
    try {
      const user = await registerUser(t.gql);
      expect(decodeJwt(user.accessToken).exp).toBe(start / 1000 + FIFTEEN_MINUTES_S);
      clock.advance(FIFTEEN_MINUTES_S * 1000 + 4_000);
      expect((await me(t, `Bearer ${user.accessToken}`)).data).toEqual({ me: { id: user.user.id } });
      clock.advance(1_000);
      expectUnauthenticated(await me(t, `Bearer ${user.accessToken}`), 'TOKEN_EXPIRED');
    } finally {
      await t.close();
    }
  });

  it('honours JWT_CLOCK_TOLERANCE', async () => {
    const clock = new TestClock(start);
    const t = await startTestApp({ clock, env: { JWT_CLOCK_TOLERANCE: '30s' } });
    try {
      const user = await registerUser(t.gql);
      clock.advance(FIFTEEN_MINUTES_S * 1000 + 29_000);
      expect((await me(t, `Bearer ${user.accessToken}`)).data).toEqual({ me: { id: user.user.id } });
      clock.advance(1_000);
      expectUnauthenticated(await me(t, `Bearer ${user.accessToken}`), 'TOKEN_EXPIRED');
    } finally {
      await t.close();
    }
  });

  it('accepts a token until the second it expires with JWT_CLOCK_TOLERANCE=0s', async () => {
    const clock = new TestClock(start);
    const t = await startTestApp({ clock, env: { JWT_CLOCK_TOLERANCE: '0s' } });
    try {
      const user = await registerUser(t.gql);
      clock.advance(FIFTEEN_MINUTES_S * 1000 - 1);
      expect((await me(t, `Bearer ${user.accessToken}`)).data).toEqual({ me: { id: user.user.id } });
      clock.advance(1);
      expectUnauthenticated(await me(t, `Bearer ${user.accessToken}`), 'TOKEN_EXPIRED');
    } finally {
      await t.close();
    }
  });
});

describe('development signing key', () => {
  let dataDir: string;
  const apps: TestApp[] = [];
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'auth-dev-key-'));
  });
  afterAll(async () => {
    for (const app of apps.reverse()) await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('generates a key under DATA_DIR once and reuses it on the next start', async () => {
    const first = await startTestApp({ env: { DATA_DIR: dataDir } });
    apps.push(first);
    const file = join(dataDir, 'dev-signing-key.eddsa.pem');
    expect(existsSync(file)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const pem = readFileSync(file, 'utf8');
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);

    const [firstKey] = (await jwksOf(first)).keys;
    expect(firstKey!.kid).toBe(await calculateJwkThumbprint(await exportJWK(createPublicKey(pem))));
    const user = await registerUser(first.gql);

    const second = await startTestApp({ databaseUrl: first.databaseUrl, env: { DATA_DIR: dataDir } });
    apps.push(second);
    expect(readFileSync(file, 'utf8')).toBe(pem);
    expect((await jwksOf(second)).keys.map((k) => k.kid)).toEqual([firstKey!.kid]);
    expect((await me(second, `Bearer ${user.accessToken}`)).data).toEqual({ me: { id: user.user.id } });
  });
});

describe('a revoked session after its entry leaves the revoked set', () => {
  let key: TestKey;
  let t: TestApp;
  const clock = new TestClock();
  beforeAll(async () => {
    key = await generateKey('EdDSA');
    t = await startTestApp({ clock, env: { JWT_PRIVATE_KEY: key.privatePem } });
  });
  afterAll(() => t?.close());

  it('never accepts a token of the session again, however long-lived it claims to be', async () => {
    const user = await registerUser(t.gql);
    const issuedS = Math.floor(clock.now() / 1000);
    const longLived = await sign(
      { ...claimsFor(user, issuedS), exp: issuedS + 10 * 365 * 86_400 },
      { alg: 'EdDSA', kid: key.kid, typ: 'at+jwt' },
      key.privateKey,
    );
    const logout = await t.gql('mutation { logout }', {}, { token: user.accessToken });
    expect(logout.data).toEqual({ logout: true });
    expectUnauthenticated(await me(t, `Bearer ${user.accessToken}`), 'SESSION_REVOKED');
    // Past every token's possible lifetime, the entry may go; every token of the session is dead by then.
    clock.advance(FIFTEEN_MINUTES_S * 1000 + 60_000);
    t.app.revoked.sweep();
    expect(t.app.revoked.has(user.session.id)).toBe(false);
    expectUnauthenticated(await me(t, `Bearer ${user.accessToken}`), 'TOKEN_EXPIRED');
    expectUnauthenticated(await me(t, `Bearer ${longLived}`), 'INVALID_TOKEN');
  });
});
