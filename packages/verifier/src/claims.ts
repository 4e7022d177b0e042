// The claims of graphql-auth-server access tokens (RFC 9068), as `verify` hands them to a service.

/** What every access token carries (RFC 9068 §2.2), plus `scope` split once at verification. */
export interface TokenClaims {
  /** `user` for a person's token (has `sid` and `roles`), `service` for a client-credentials token. */
  readonly kind: 'user' | 'service';
  readonly iss: string;
  /** The client's audiences: a string when there is one (RFC 7519 §4.1.3). */
  readonly aud: string | readonly string[];
  /** The user id, or for a service token the client id. */
  readonly sub: string;
  /** RFC 9068 `client_id`: the client the token was issued to. */
  readonly client_id: string;
  readonly jti: string;
  /** Seconds since the epoch. */
  readonly iat: number;
  /** Seconds since the epoch. */
  readonly exp: number;
  /** Space-separated scopes, as signed. */
  readonly scope: string;
  /** `scope` split once at verification: `claims.scopes.has('users:read')`. */
  readonly scopes: ReadonlySet<string>;
  /** Any other claim of the token, as signed. */
  readonly [claim: string]: unknown;
}

/** A user's token: `sub` is the user id, `sid` the session whose revocation refuses it. */
export interface UserClaims extends TokenClaims {
  readonly kind: 'user';
  readonly sid: string;
  /** `USER`, `ADMIN`. */
  readonly roles: readonly string[];
}

/** A service token (client credentials, RFC 6749 §4.4): no user and no session; `sub` is the client id. */
export interface ServiceClaims extends TokenClaims {
  readonly kind: 'service';
}

/** The verified claims of a token: narrow on `kind`. */
export type VerifiedClaims = UserClaims | ServiceClaims;
