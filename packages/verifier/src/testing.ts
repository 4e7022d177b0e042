// Test helpers for services that trust graphql-auth-server tokens: a throwaway issuer that mints tokens of the
// server's exact shape (RFC 9068, EdDSA, kid) and a verifier that trusts them, with a revocation list in memory.
import { createLocalJWKSet, exportJWK, generateKeyPair, type JSONWebKeySet, SignJWT } from 'jose';
import type { VerifiedClaims } from './claims.ts';
import { type Revocation, RevocationList } from './revocations.ts';
import { countOutcomes, type TokenVerifier } from './verifier.ts';
import { createClaimsVerifier } from './verify-token.ts';

/** Options of {@link createTestIssuer}. Durations are milliseconds. */
export interface TestIssuerOptions {
  /** Default `https://auth.test`. */
  readonly issuer?: string;
  /** The audience the verifier expects and tokens carry by default. Default `https://api.test`. */
  readonly audience?: string;
  /** Token lifetime. Default 900_000 (15 minutes, the server's default). */
  readonly lifetime?: number;
  /** Clock tolerance of the verifier. Default 5_000. */
  readonly clockTolerance?: number;
  /** The clock (milliseconds since the epoch) tokens are minted and verified by. Default `Date.now`. */
  readonly now?: () => number;
}

/** What a user token carries; everything is optional. */
export interface UserTokenOptions {
  /** The user id (`sub`). Default a random UUID. */
  readonly userId?: string;
  /** The session (`sid`), what `revoke({ sessionId })` refuses. Default a random UUID. */
  readonly sessionId?: string;
  /** `client_id`. Default `default`. */
  readonly clientId?: string;
  /** Default `['USER']`. */
  readonly roles?: readonly string[];
  /** Default the USER role's scopes (`profile:read profile:write sessions:read sessions:write`). */
  readonly scopes?: readonly string[];
  /** `aud`. Default the issuer's audience. */
  readonly audience?: string | readonly string[];
  /** Milliseconds since the epoch. Default now. */
  readonly issuedAt?: number;
  /** Lifetime in milliseconds. Default the issuer's. */
  readonly lifetime?: number;
  /** Any other claims (they override the ones above). */
  readonly claims?: Record<string, unknown>;
}

/** What a service (client-credentials) token carries. */
export interface ServiceTokenOptions {
  /** `client_id` and `sub`. */
  readonly clientId: string;
  /** Default none. */
  readonly scopes?: readonly string[];
  readonly audience?: string | readonly string[];
  readonly issuedAt?: number;
  readonly lifetime?: number;
  readonly claims?: Record<string, unknown>;
}

/** A verifier that trusts a test issuer, with revocations you add by hand. */
export interface TestVerifier extends TokenVerifier {
  /**
   * Revokes like the server's feed does: `{ sessionId }` refuses that session's tokens (SESSION_REVOKED);
   * `{ clientId }` refuses every token of the client issued before `revokedAt` (default: the next whole second,
   * so every token minted so far) (CLIENT_DISABLED); `reason: 'CLIENT_SECRET_ROTATED'` refuses its service tokens only.
   */
  revoke(revocation: Revocation): void;
}

/** A throwaway issuer: its public keys, a verifier that trusts it, and token minting. */
export interface TestIssuer {
  readonly issuer: string;
  readonly audience: string;
  /** The public key set (with `kid`, `alg`, `use`), e.g. to serve as `/.well-known/jwks.json` in a test. */
  readonly jwks: JSONWebKeySet;
  /** A verifier of this issuer's tokens; its feed is always current. */
  readonly verifier: TestVerifier;
  /** Mints a user's access token. */
  userToken(options?: UserTokenOptions): Promise<string>;
  /** Mints a service (client-credentials) token: `sub` = `client_id`, no `sid`, no `roles`. */
  serviceToken(options: ServiceTokenOptions): Promise<string>;
}

const USER_SCOPES = ['profile:read', 'profile:write', 'sessions:read', 'sessions:write'];

/** Creates a throwaway issuer (a fresh Ed25519 key) and a verifier that trusts it. For tests only. */
export async function createTestIssuer(options: TestIssuerOptions = {}): Promise<TestIssuer> {
  const issuer = options.issuer ?? 'https://auth.test';
  const audience = options.audience ?? 'https://api.test';
  const lifetime = options.lifetime ?? 900_000;
  const clockToleranceMs = options.clockTolerance ?? 5_000;
  const now = options.now ?? (() => Date.now());
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const kid = `test-${crypto.randomUUID()}`;
  const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' }] };

  const sign = (claims: Record<string, unknown>, issuedAt: number, life: number) => {
    const iat = Math.floor(issuedAt / 1000);
    return new SignJWT({ jti: crypto.randomUUID(), ...claims, iat, exp: iat + Math.floor(life / 1000) })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid })
      .setIssuer(issuer)
      .sign(privateKey);
  };

  const list = new RevocationList(now, clockToleranceMs);
  const { verify, counts } = countOutcomes(
    createClaimsVerifier({
      getKey: createLocalJWKSet(jwks),
      issuer,
      audience,
      algorithms: ['EdDSA'],
      clockToleranceMs,
      now,
      refusal: (claims: VerifiedClaims) => list.refusal(claims),
      ready: () => undefined,
    }),
  );

  return {
    issuer,
    audience,
    jwks,
    verifier: {
      verify,
      // Like the server: a client's revocation is dated the first whole second after it (revokedAt), so that every
      // token issued up to now, in whole seconds, is before it.
      revoke: (revocation) =>
        list.add({ ...revocation, revokedAt: revocation.revokedAt ?? (Math.floor(now() / 1000) + 1) * 1000 }),
      status: () => ({
        connected: true,
        stalenessMs: 0,
        refusals: { ...counts.refusals },
        verified: counts.verified,
        revoked: list.size,
      }),
      close: () => {},
    },
    userToken: (token = {}) =>
      sign(
        {
          aud: token.audience ?? audience,
          sub: token.userId ?? crypto.randomUUID(),
          client_id: token.clientId ?? 'default',
          sid: token.sessionId ?? crypto.randomUUID(),
          scope: (token.scopes ?? USER_SCOPES).join(' '),
          roles: [...(token.roles ?? ['USER'])],
          ...token.claims,
        },
        token.issuedAt ?? now(),
        token.lifetime ?? lifetime,
      ),
    serviceToken: (token) =>
      sign(
        {
          aud: token.audience ?? audience,
          sub: token.clientId,
          client_id: token.clientId,
          scope: (token.scopes ?? []).join(' '),
          ...token.claims,
        },
        token.issuedAt ?? now(),
        token.lifetime ?? lifetime,
      ),
  };
}
