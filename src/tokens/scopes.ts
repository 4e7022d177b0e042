// Scopes (API.md "Scopes and roles", "Clients"): built-in scopes follow from roles, API scopes are granted to
// users and declared by clients; the token carries them, the schema checks them.
import type { Role } from '../db/entities.ts';

export const USER_SCOPES = ['profile:read', 'profile:write', 'sessions:read', 'sessions:write'] as const;
export const ADMIN_SCOPES = ['users:read', 'users:write', 'sessions:admin', 'clients:admin'] as const;
/** Held by no role: only CONFIDENTIAL clients' service tokens carry it (the revocation feed). */
export const SERVICE_ONLY_SCOPES = ['sessions:feed'] as const;
export const BUILT_IN_SCOPES: readonly string[] = [...USER_SCOPES, ...ADMIN_SCOPES, ...SERVICE_ONLY_SCOPES];
/** The built-in scopes a CONFIDENTIAL client may declare for its service tokens, besides API scopes. */
export const SERVICE_BUILT_IN_SCOPES: readonly string[] = ['sessions:feed', 'users:read'];

export type BuiltInScope =
  | (typeof USER_SCOPES)[number]
  | (typeof ADMIN_SCOPES)[number]
  | (typeof SERVICE_ONLY_SCOPES)[number];
/** A built-in scope, or an API scope (any other valid name). */
export type Scope = BuiltInScope | (string & {});

export function scopesForRoles(roles: readonly Role[]): BuiltInScope[] {
  return roles.includes('ADMIN') ? [...USER_SCOPES, ...ADMIN_SCOPES] : [...USER_SCOPES];
}

const API_SCOPE_NAME = /^[a-z][a-z0-9_.:-]{0,63}$/;

export const isBuiltInScope = (name: string): boolean => BUILT_IN_SCOPES.includes(name);

/** An API scope name (API.md): 1–64 of [a-z0-9_.:-], starting with a letter, and not a built-in scope. */
export const isApiScopeName = (name: string): boolean => API_SCOPE_NAME.test(name) && !isBuiltInScope(name);

/** Users' API scopes as stored (users.scopes): space-separated, sorted, without duplicates. */
export const joinScopes = (scopes: Iterable<string>): string => [...new Set(scopes)].sort().join(' ');
export const splitScopes = (stored: string | null | undefined): string[] =>
  stored ? stored.split(' ').filter((s) => s.length > 0) : [];
