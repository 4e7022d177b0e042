// Verifies access tokens: pinned algorithms, known kid, typ at+jwt, iss/aud/exp, and the revoked-session set.
// No database or network: a signature check and one in-memory lookup.
import { type JWTHeaderParameters, jwtVerify } from 'jose';
import type { Scope } from '../auth/scopes.ts';
import type { Clock } from '../clock.ts';
import { ROLES, type Role } from '../db/entities.ts';
import { unauthenticated } from '../errors.ts';
import type { AccessClaims } from './claims.ts';
import type { KeyStore } from './key-store.ts';

export interface VerifySettings {
  readonly issuer: string;
  readonly audience: string;
  readonly clockToleranceMs: number;
}

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
    if (key === undefined || key.alg !== header.alg) throw unauthenticated('Unknown signing key', 'INVALID_TOKEN');
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

  return async (token) => {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, getKey, { ...options, currentDate: new Date(clock.now()) }));
    } catch (error) {
      const expired = (error as { code?: string }).code === 'ERR_JWT_EXPIRED';
      throw expired
        ? unauthenticated('The access token has expired', 'TOKEN_EXPIRED')
        : unauthenticated('The access token is invalid', 'INVALID_TOKEN');
    }
    const { sub, sid, scope, roles } = payload;
    if (
      typeof sub !== 'string' ||
      typeof sid !== 'string' ||
      typeof scope !== 'string' ||
      !Array.isArray(roles) ||
      !roles.every(isRole)
    ) {
      throw unauthenticated('The access token is invalid', 'INVALID_TOKEN');
    }
    if (isSessionRevoked(sid)) throw unauthenticated('The session has been revoked', 'SESSION_REVOKED');
    return {
      ...(payload as Omit<AccessClaims, 'scopes'>),
      roles,
      scopes: new Set(scope.split(' ') as Scope[]),
    };
  };
}
