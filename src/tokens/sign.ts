// Mints RFC 9068 access tokens with the current signing key.
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Clock } from '../clock.ts';
import type { Role } from '../db/entities.ts';
import type { KeyStore } from './key-store.ts';
import { scopesForRoles } from './scopes.ts';

export interface TokenSettings {
  readonly issuer: string;
  readonly audience: string;
  readonly accessTokenTtlMs: number;
}

export interface SignedAccessToken {
  readonly token: string;
  readonly expiresAt: Date;
}

export type AccessTokenSigner = (subject: {
  userId: string;
  sessionId: string;
  roles: readonly Role[];
  /** The token expires no later than this (the session's refresh token expiry), even if sooner than its lifetime. */
  notAfter?: Date;
}) => Promise<SignedAccessToken>;

export function createAccessTokenSigner(keys: KeyStore, settings: TokenSettings, clock: Clock): AccessTokenSigner {
  const { alg, kid, key } = keys.signing;
  const ttl = Math.floor(settings.accessTokenTtlMs / 1000);
  return async ({ userId, sessionId, roles, notAfter }) => {
    const iat = Math.floor(clock.now() / 1000);
    const exp = Math.min(iat + ttl, notAfter ? Math.floor(notAfter.getTime() / 1000) : Number.POSITIVE_INFINITY);
    const token = await new SignJWT({ sid: sessionId, scope: scopesForRoles(roles).join(' '), roles: [...roles] })
      .setProtectedHeader({ alg, kid, typ: 'at+jwt' })
      .setIssuer(settings.issuer)
      .setAudience(settings.audience)
      .setSubject(userId)
      .setJti(randomUUID())
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(key);
    return { token, expiresAt: new Date(exp * 1000) };
  };
}
