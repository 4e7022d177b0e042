// The verifier package's memory of verified tokens: bounded at 10,000, the oldest out first. Seen through how often
// the signature check asks for a key (a real EdDSA key set, counted): a remembered token asks for none.
import { createLocalJWKSet, exportJWK, generateKeyPair, type JWTVerifyGetKey, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createClaimsVerifier } from '../packages/verifier/src/verify-token.ts';

const ISSUER = 'https://auth.test';
const AUDIENCE = 'https://api.test';
const REMEMBERED = 10_000;

describe("the verifier package's cache of verified tokens", () => {
  it('remembers 10,000 tokens at most, and forgets the oldest first', async () => {
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
    const tokens = await Promise.all(
      Array.from({ length: REMEMBERED + 1 }, (_, i) =>
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
    const token = (i: number) => tokens[i] as string;
    /** Verifies the token and says whether its signature was checked (true) or it was remembered (false). */
    const checked = async (i: number) => {
      const before = keyLookups;
      const claims = await verify(token(i));
      expect(claims.sub).toBe(`user-${i}`);
      return keyLookups > before;
    };

    for (let i = 0; i < REMEMBERED; i++) expect(await checked(i)).toBe(true);
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
