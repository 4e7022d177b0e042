// Scopes follow from roles (API.md, "Scopes and roles"); the token carries them, the schema checks them.
import type { Role } from '../db/entities.ts';

export const USER_SCOPES = ['profile:read', 'profile:write', 'sessions:read', 'sessions:write'] as const;
export const ADMIN_SCOPES = ['users:read', 'users:write', 'sessions:admin'] as const;
export type Scope = (typeof USER_SCOPES)[number] | (typeof ADMIN_SCOPES)[number];

export function scopesForRoles(roles: readonly Role[]): Scope[] {
  return roles.includes('ADMIN') ? [...USER_SCOPES, ...ADMIN_SCOPES] : [...USER_SCOPES];
}
