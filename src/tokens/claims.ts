// The claims of our access tokens (RFC 9068, plus `sid` and `roles` on user tokens), as verified.

import type { Role } from '../db/entities.ts';

/** What every access token carries (RFC 9068 §2.2), plus `scope` split once at verification. */
export interface TokenClaims {
  readonly iss: string;
  /** The client's audiences: a string when there is one (RFC 7519 §4.1.3). */
  readonly aud: string | readonly string[];
  readonly sub: string;
  /** RFC 9068 `client_id`: the client the token was issued to. */
  readonly client_id: string;
  readonly jti: string;
  /** Seconds since the epoch. */
  readonly iat: number;
  readonly exp: number;
  readonly scope: string;
  /** `scope` split once at verification, for the schema's checks. */
  readonly scopes: ReadonlySet<string>;
}

/** A user's token: `sub` is the user id, `sid` the session whose revocation refuses it. */
export interface AccessClaims extends TokenClaims {
  readonly kind: 'user';
  readonly sid: string;
  readonly roles: readonly Role[];
}

/** A service token (client credentials, RFC 6749 §4.4): no user and no session; `sub` is the client id. */
export interface ServiceClaims extends TokenClaims {
  readonly kind: 'service';
}

export type VerifiedClaims = AccessClaims | ServiceClaims;
