// The claims of our access tokens (RFC 9068 plus `sid` and `roles`).

import type { Role } from '../db/entities.ts';
import type { Scope } from './scopes.ts';

export interface AccessClaims {
  readonly iss: string;
  readonly aud: string;
  readonly sub: string;
  readonly sid: string;
  readonly jti: string;
  readonly iat: number;
  readonly exp: number;
  readonly scope: string;
  readonly roles: readonly Role[];
  /** `scope` split once at verification, for the schema's checks. */
  readonly scopes: ReadonlySet<Scope>;
}
