// What every resolver receives: the verified claims (or null), a per-request EntityManager and the services.
import type { AccountDeps } from '../account/deps.ts';
import type { RequestMeta } from '../audit/audit.ts';
import type { PasswordHasher } from '../auth/passwords.ts';
import type { Clock } from '../clock.ts';
import type { Em } from '../db/orm.ts';
import type { RevocationBus } from '../events/revocation-bus.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import type { OAuth } from '../oauth/oauth.ts';
import type { Sessions } from '../sessions/sessions.ts';
import type { AccessClaims } from '../tokens/claims.ts';

export interface Services {
  readonly clock: Clock;
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  readonly bus: RevocationBus;
  /** Throttles of login, registration, refresh and OAuth starts (RATE_LIMIT_*). */
  readonly limits: RateLimits;
  /** Email verification, password reset, profile, deletion and export. */
  readonly account: AccountDeps;
  /** Configured providers, redirect-URI allow-list and OAuth state. */
  readonly oauth: OAuth;
  /** Who may read `_service { sdl }` (FEDERATION_SDL). */
  readonly federationSdl: 'public' | 'scoped';
}

export interface Context {
  /** Claims of a verified, unrevoked access token; null for an anonymous request. */
  readonly auth: AccessClaims | null;
  /** A fork of the ORM's EntityManager for this request, created on first use. */
  readonly em: Em;
  readonly meta: RequestMeta;
  readonly services: Services;
  /** Users this request has just signed in (register, login, refresh), with their session: they may read their own payload. */
  readonly signedIn: Map<string, string>;
}

/** Whether the caller is `userId`: by token, or by having signed in within this request. */
export const isSelf = (context: Context, userId: string): boolean =>
  context.auth?.sub === userId || context.signedIn.has(userId);

/** The caller's session as seen from `userId`'s side: the token's, or the one this request opened. */
export const currentSessionOf = (context: Context, userId: string): string | undefined =>
  context.auth?.sub === userId ? context.auth.sid : context.signedIn.get(userId);

/** Records that this request signed the payload's user in, and passes the payload on. */
export function signedIn<T extends { user: { id: string }; session: { id: string } }>(context: Context, payload: T): T {
  context.signedIn.set(payload.user.id, payload.session.id);
  return payload;
}

/** Narrows the context of a field whose `authScopes` already required a token. */
export function claimsOf(context: Context): AccessClaims {
  if (!context.auth) throw new Error('authScopes must guard this field');
  return context.auth;
}
