// Verifies access tokens: pinned algorithms, known kid, typ at+jwt, iss/aud/exp, a lifetime no longer than we
// issue, and the revoked-session set. No database or network: a signature check and one in-memory lookup.
import { type JWTHeaderParameters, jwtVerify } from 'jose';
import type { Clock } from '../clock.ts';
import { ROLES, type Role } from '../db/entities.ts';
import { unauthenticated } from '../errors.ts';
import type { AccessClaims } from './claims.ts';
import type { KeyStore } from './key-store.ts';
import type { Scope } from './scopes.ts';

export interface VerifySettings {
  readonly issuer: string;
  readonly audience: string;
  readonly clockToleranceMs: number;
  /** The lifetime we issue tokens with: a token claiming a longer one (`exp - iat`) was not minted by us. */
  readonly accessTokenTtlMs: number;
}

/** How many verified tokens an instance remembers (a few MB at most). */
const VERIFIED_CACHE_SIZE = 10_000;

export type AccessTokenVerifier = (token: string) => Promise<AccessClaims>;

const isRole = (value: unknown): value is Role =>
  typeof value === 'string' && (ROLES as readonly string[]).includes(value);

export function createAccessTokenVerifier(
  keys: KeyStore,
  settings: VerifySettings,
  clock: Clock,
  isSessionRevoked: (sessionId: string) => boolean,
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
    requiredClaims: ['sub', 'sid', 'jti', 'iat', 'exp', 'scope'],
  };

  // Clients send the same token for its whole life: remember the tokens already verified (by their exact
  // text) so that each costs one signature check, not one per request. Expiry and revocation are still
  // checked every time.
  const verified = new Map<string, AccessClaims>();
  const toleranceMs = options.clockTolerance * 1000;
  const maxLifetimeSeconds = Math.floor((settings.accessTokenTtlMs + toleranceMs) / 1000);

  return async (token) => {
    const known = verified.get(token);
    if (known) {
      if (known.exp * 1000 + toleranceMs <= clock.now()) {
        verified.delete(token);
        throw unauthenticated('TOKEN_EXPIRED');
      }
      if (isSessionRevoked(known.sid)) throw unauthenticated('SESSION_REVOKED');
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
    if (
      // Bounded lifetime: whatever key signed it, a token never outlives what we issue, so a revoked session's
      // tokens are all expired by the time its entry leaves the revoked set, and a retired key's tokens die
      // within one lifetime of its retirement. Nor may it claim to be issued in the future.
      exp - iat > maxLifetimeSeconds ||
      iat * 1000 > clock.now() + toleranceMs ||
      typeof sub !== 'string' ||
      typeof sid !== 'string' ||
      typeof scope !== 'string' ||
      !Array.isArray(roles) ||
      !roles.every(isRole)
    ) {
      throw unauthenticated('INVALID_TOKEN');
    }
    if (isSessionRevoked(sid)) throw unauthenticated('SESSION_REVOKED');
    const claims: AccessClaims = Object.freeze({
      ...(payload as Omit<AccessClaims, 'scopes'>),
      roles: Object.freeze(roles),
      scopes: new Set(scope.split(' ') as Scope[]),
    });
    // Bounded: past the limit the oldest entry goes (a Map iterates in insertion order).
    if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value as string);
    verified.set(token, claims);
    return claims;
  };
}
