// The memories of verified tokens, bounded at 10,000: the verifier package's (the oldest out first) and the server's
// own (the least recently used out first). Seen through how often the signature check asks for a key (a real EdDSA
// key, counted): a remembered token asks for none.
import { type CryptoKey, createLocalJWKSet, exportJWK, generateKeyPair, type JWTVerifyGetKey, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createClaimsVerifier } from '../packages/verifier/src/verify-token.ts';
import { systemClock } from '../src/clock.ts';
import type { KeyStore, VerificationKey } from '../src/tokens/key-store.ts';
import { createAccessTokenVerifier } from '../src/tokens/verify.ts';

const ISSUER = 'https://auth.test';
const AUDIENCE = 'https://api.test';
const REMEMBERED = 10_000;

/** `count` distinct user access tokens of the server's shape, signed with `privateKey` under kid `k1`. */
const userTokens = (privateKey: CryptoKey, count: number) =>
  Promise.all(
    Array.from({ length: count }, (_, i) =>
      new SignJWT({ sid: `session-${i}`, roles: ['USER'], scope: 'profile:read', client_id: 'default' })
        .setProtectedHeader({ alg: 'EdDSA', kid: 'k1', typ: 'at+jwt' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject(`user-${i}`)
        .setJti(`jti-${i}`)
        .setIssuedAt()
        .setExpirationTime('15m')
        .sign(privateKey),
    ),
  );

describe("the verifier package's cache of verified tokens", () => {
  it('remembers 10,000 tokens at most, and forgets the oldest first (a token verified twice at once, once)', async () => {
    const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const jwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'EdDSA' }] });
    let keyLookups = 0;
    const getKey: JWTVerifyGetKey = (header, token) => {
      keyLookups++;
      return jwks(header, token);
    };
    const verify = createClaimsVerifier({
      getKey,
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ['EdDSA'],
      clockToleranceMs: 5_000,
      now: Date.now,
      refusal: () => undefined,
      ready: () => undefined,
    });
    const tokens = await userTokens(privateKey, REMEMBERED + 1);
    const token = (i: number) => tokens[i] as string;
    /** Verifies the token and says whether its signature was checked (true) or it was remembered (false). */
    const checked = async (i: number) => {
      const before = keyLookups;
      const claims = await verify(token(i));
      expect(claims.sub).toBe(`user-${i}`);
      return keyLookups > before;
    };

    // The first token verified twice at once: both calls miss, and it must still take one place, not two.
    const before = keyLookups;
    await Promise.all([verify(token(0)), verify(token(0))]);
    expect(keyLookups - before).toBe(2);
    for (let i = 1; i < REMEMBERED; i++) expect(await checked(i)).toBe(true);
    expect(await checked(0)).toBe(false);
    expect(await checked(REMEMBERED - 1)).toBe(false);
    // One more: the oldest (the first, however recently it was used) is forgotten, and only it.
    expect(await checked(REMEMBERED)).toBe(true);
    expect(await checked(1)).toBe(false);
    expect(await checked(0)).toBe(true);
    // Remembered again in the place of the next oldest.
    expect(await checked(0)).toBe(false);
    expect(await checked(2)).toBe(false);
    expect(await checked(1)).toBe(true);
  });
});

describe("the server's cache of verified access tokens", () => {
  it('remembers 10,000 tokens at most, and forgets the least recently used first', async () => {
    const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    let keyLookups = 0;
    const key: VerificationKey = { kid: 'k1', alg: 'EdDSA', key: publicKey };
    const verification = new Map([['k1', key]]);
    const counted: ReadonlyMap<string, VerificationKey> = Object.assign(Object.create(verification), {
      get: (kid: string) => {
        keyLookups++;
        return verification.get(kid);
      },
    });
    const keys: KeyStore = { signing: key, verification: counted, algorithms: ['EdDSA'], jwks: { keys: [] } };
    const verify = createAccessTokenVerifier(
      keys,
      { issuer: ISSUER, audience: AUDIENCE, clockToleranceMs: 5_000, accessTokenTtlMs: 15 * 60_000 },
      systemClock,
      () => undefined,
    );
    const tokens = await userTokens(privateKey, REMEMBERED + 1);
    const checked = async (i: number) => {
      const before = keyLookups;
      const claims = await verify(tokens[i] as string);
      expect(claims.sub).toBe(`user-${i}`);
      return keyLookups > before;
    };

    for (let i = 0; i < REMEMBERED; i++) expect(await checked(i)).toBe(true);
    // The first is used again: the second is now the least recently used, and goes when one more comes.
    expect(await checked(0)).toBe(false);
    expect(await checked(REMEMBERED)).toBe(true);
    expect(await checked(0)).toBe(false);
    expect(await checked(2)).toBe(false);
    expect(await checked(1)).toBe(true);
  });
});
