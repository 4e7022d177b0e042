// Mints RFC 9068 access tokens with the current signing key: user tokens (a session's) and service tokens
// (client credentials, RFC 6749 §4.4).
import { randomUUID } from 'node:crypto';
import { CompactSign } from 'jose';
import type { Clock } from '../clock.ts';
import type { Role } from '../db/entities.ts';
import type { KeyStore } from './key-store.ts';
import { scopesForRoles } from './scopes.ts';

export interface TokenSettings {
  readonly issuer: string;
  /** Our own API's audience (AUDIENCE): every user token carries it. */
  readonly audience: string;
  readonly accessTokenTtlMs: number;
}

export interface SignedAccessToken {
  readonly token: string;
  readonly expiresAt: Date;
  /** The granted scopes, space-separated, as in the token's `scope` claim. */
  readonly scope: string;
}

export interface UserTokenSubject {
  readonly userId: string;
  readonly sessionId: string;
  readonly roles: readonly Role[];
  /** The client the session was opened for (`client_id`). */
  readonly clientId: string;
  /** The client's audiences; AUDIENCE is added to them. */
  readonly audiences: readonly string[];
  /** The user's API scopes that the client declares (already filtered). */
  readonly apiScopes: readonly string[];
  /** The token expires no later than this (the session's refresh token expiry), even if sooner than its lifetime. */
  readonly notAfter?: Date;
}

export interface ServiceTokenSubject {
  readonly clientId: string;
  /** The client's audiences (with AUDIENCE already added when a built-in scope is granted). */
  readonly audiences: readonly string[];
  readonly scopes: readonly string[];
  /** `iat` is at least this (seconds): a token issued after a client-wide revocation is never taken for one before. */
  readonly notBefore?: number;
}

export interface AccessTokenSigner {
  (subject: UserTokenSubject): Promise<SignedAccessToken>;
  /** A service token: `sub` = `client_id` = the client id, no `sid`, no `roles`. */
  service(subject: ServiceTokenSubject): Promise<SignedAccessToken>;
}

const UTF8 = new TextEncoder();

/** `aud` as RFC 7519 §4.1.3 allows: a string for one audience, an array for several. */
const audienceClaim = (audiences: readonly string[]): string | string[] => {
  const unique = [...new Set(audiences)];
  return unique.length === 1 ? (unique[0] as string) : unique;
};

export function createAccessTokenSigner(keys: KeyStore, settings: TokenSettings, clock: Clock): AccessTokenSigner {
  const { alg, kid, key } = keys.signing;
  const ttl = Math.floor(settings.accessTokenTtlMs / 1000);
  const header = { alg, kid, typ: 'at+jwt' };
  // The claims set is ours, built whole here (RFC 9068 §2.2): jose's SignJWT would deep-copy and re-check it on
  // every token, a tenth of a refresh's signing time. jose still makes the JWS (RFC 7515 compact serialization).
  const mint = async (
    claims: Record<string, unknown>,
    subject: string,
    audiences: readonly string[],
    iat: number,
    exp: number,
  ): Promise<string> => {
    const payload = {
      ...claims,
      iss: settings.issuer,
      aud: audienceClaim(audiences),
      sub: subject,
      jti: randomUUID(),
      iat,
      exp,
    };
    return new CompactSign(UTF8.encode(JSON.stringify(payload))).setProtectedHeader(header).sign(key);
  };

  const sign = async ({ userId, sessionId, roles, clientId, audiences, apiScopes, notAfter }: UserTokenSubject) => {
    const iat = Math.floor(clock.now() / 1000);
    const exp = Math.min(iat + ttl, notAfter ? Math.floor(notAfter.getTime() / 1000) : Number.POSITIVE_INFINITY);
    const scope = [...scopesForRoles(roles), ...apiScopes].join(' ');
    const token = await mint(
      { client_id: clientId, sid: sessionId, scope, roles: [...roles] },
      userId,
      [...audiences, settings.audience],
      iat,
      exp,
    );
    return { token, expiresAt: new Date(exp * 1000), scope };
  };
  sign.service = async ({ clientId, audiences, scopes, notBefore }: ServiceTokenSubject) => {
    const iat = Math.max(Math.floor(clock.now() / 1000), notBefore ?? 0);
    const exp = iat + ttl;
    const scope = scopes.join(' ');
    const token = await mint({ client_id: clientId, scope }, clientId, audiences, iat, exp);
    return { token, expiresAt: new Date(exp * 1000), scope };
  };
  return sign;
}
