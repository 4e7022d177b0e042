// Verifies access tokens: pinned algorithms, known kid, typ at+jwt, iss/aud/exp, a lifetime no longer than we
// issue, and the revocations (sessions, clients). No database or network: a signature check and in-memory lookups.
import { type JWTHeaderParameters, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock.ts';
import { ROLES, type Role } from '../db/entities.ts';
import { type UnauthenticatedReason, unauthenticated } from '../errors.ts';
import type { AccessClaims, ServiceClaims, VerifiedClaims } from './claims.ts';
import type { KeyStore } from './key-store.ts';

export interface VerifySettings {
  readonly issuer: string;
  readonly audience: string;
  readonly clockToleranceMs: number;
  /** The lifetime we issue tokens with: a token claiming a longer one (`exp - iat`) was not minted by us. */
  readonly accessTokenTtlMs: number;
}

/** How many verified tokens an instance remembers (a few MB at most). */
const VERIFIED_CACHE_SIZE = 10_000;

/** Resolves to the claims of a valid, unrevoked token; rejects with UNAUTHENTICATED and its reason otherwise. */
export type AccessTokenVerifier = (token: string) => Promise<VerifiedClaims>;

/** Why a token whose signature and claims are valid is refused now (a revocation), or undefined. */
export type Refusal = (claims: VerifiedClaims) => UnauthenticatedReason | undefined;

const isRole = (value: unknown): value is Role =>
  typeof value === 'string' && (ROLES as readonly string[]).includes(value);

export function createAccessTokenVerifier(
  keys: KeyStore,
  settings: VerifySettings,
  clock: Clock,
  refusal: Refusal,
): AccessTokenVerifier {
  const getKey = (header: JWTHeaderParameters) => {
    const key = header.kid === undefined ? undefined : keys.verification.get(header.kid);
    // The key decides the algorithm: a token may not pick a different one for a known kid.
    if (key === undefined || key.alg !== header.alg) throw unauthenticated('INVALID_TOKEN');
    return key.key;
  };
  const options = {
    algorithms: [...keys.algorithms],
    issuer: settings.issuer,
    audience: settings.audience,
    typ: 'at+jwt',
    clockTolerance: Math.floor(settings.clockToleranceMs / 1000),
    requiredClaims: ['sub', 'jti', 'iat', 'exp', 'scope'],
  };

  // Clients send the same token for its whole life: remember the tokens already verified (by their exact
  // text) so that each costs one signature check, not one per request. Expiry and revocation are still
  // checked every time. Past VERIFIED_CACHE_SIZE the least recently used goes (lru-cache: O(1) per eviction, where
  // a Map's first key, behind the holes its deletions leave, is not).
  const verified = new LRUCache<string, VerifiedClaims>({ max: VERIFIED_CACHE_SIZE });
  const toleranceMs = options.clockTolerance * 1000;
  const maxLifetimeSeconds = Math.floor((settings.accessTokenTtlMs + toleranceMs) / 1000);

  return async (token) => {
    const known = verified.get(token);
    if (known) {
      if (known.exp * 1000 + toleranceMs <= clock.now()) {
        verified.delete(token);
        throw unauthenticated('TOKEN_EXPIRED');
      }
      const refused = refusal(known);
      if (refused) throw unauthenticated(refused);
      return known;
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, getKey, { ...options, currentDate: new Date(clock.now()) }));
    } catch (error) {
      const expired = (error as { code?: string }).code === 'ERR_JWT_EXPIRED';
      throw expired ? unauthenticated('TOKEN_EXPIRED') : unauthenticated('INVALID_TOKEN');
    }
    const { sub, sid, scope, roles, iat, exp } = payload as Record<string, unknown> & { iat: number; exp: number };
    // Tokens issued before clients existed name no client: they were the default client's (user tokens only).
    const clientId = payload.client_id ?? (typeof sid === 'string' ? 'default' : undefined);
    const service = sid === undefined && roles === undefined;
    if (
      // Bounded lifetime: whatever key signed it, a token never outlives what we issue, so a revoked session's
      // tokens are all expired by the time its entry leaves the revoked set, and a retired key's tokens die
      // within one lifetime of its retirement. Nor may it claim to be issued in the future.
      exp - iat > maxLifetimeSeconds ||
      iat * 1000 > clock.now() + toleranceMs ||
      typeof sub !== 'string' ||
      typeof scope !== 'string' ||
      typeof clientId !== 'string' ||
      // A service token is its client's own: sub = client_id (RFC 9068 §2.2 for client credentials).
      (service ? sub !== clientId : typeof sid !== 'string' || !Array.isArray(roles) || !roles.every(isRole))
    ) {
      throw unauthenticated('INVALID_TOKEN');
    }
    const scopes: ReadonlySet<string> = new Set(scope.split(' ').filter((s) => s.length > 0));
    const claims: VerifiedClaims = service
      ? (Object.freeze({ ...payload, client_id: clientId, kind: 'service', scopes }) as unknown as ServiceClaims)
      : (Object.freeze({
          ...payload,
          client_id: clientId,
          kind: 'user',
          roles: Object.freeze(roles as string[]),
          scopes,
        }) as unknown as AccessClaims);
    const refused = refusal(claims);
    if (refused) throw unauthenticated(refused);
    verified.set(token, claims);
    return claims;
  };
}
