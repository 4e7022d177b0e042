// What every resolver receives: the verified claims (or null), the call that every flow takes (a per-request
// EntityManager, the request's meta, the caller) and the services. Resolvers call `flow(services, call, input)`.

import type { Logger } from 'pino';
import type { OneTimeCodes } from '../account/codes.ts';
import type { PasswordHasher } from '../auth/passwords.ts';
import type { Call } from '../call.ts';
import type { ClientRegistry } from '../clients/registry.ts';
import type { Clock } from '../clock.ts';
import type { UserCache } from '../db/user-cache.ts';
import type { RevocationBus } from '../events/revocation-bus.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import type { Mailer } from '../mail/mailer.ts';
import type { MailSettings } from '../mail/templates.ts';
import type { MfaKit } from '../mfa/factors.ts';
import type { PasskeyFactor } from '../mfa/passkey-factor.ts';
import type { WebAuthn } from '../mfa/webauthn.ts';
import type { OAuth } from '../oauth/oauth.ts';
import type { RevocationFeed } from '../sessions/revocation-feed.ts';
import type { Sessions } from '../sessions/sessions.ts';
import type { AccessClaims, ServiceClaims } from '../tokens/claims.ts';

/** Everything the flows are built from, made once by createApp; each flow takes the part it needs (its `deps`). */
export interface Services {
  readonly clock: Clock;
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  /** This instance's copy of the client registry (API.md "Clients"): sign-in's clientId, tokens' claims. */
  readonly clients: ClientRegistry;
  readonly bus: RevocationBus;
  /** Every throttle (RATE_LIMIT_*, CODE_REQUEST_*). */
  readonly limits: RateLimits;
  /** Verification and reset codes. */
  readonly codes: OneTimeCodes;
  readonly mailer: Mailer;
  readonly mail: MailSettings;
  /** Configured providers, redirect-URI allow-list and OAuth state. */
  readonly oauth: OAuth;
  /** Who may read `_service { sdl }` (FEDERATION_SDL). */
  readonly federationSdl: 'public' | 'scoped';
  /** Every revocation in force and each new one, for services holding sessions:feed. */
  readonly revocationFeed: RevocationFeed;
  /** Users' rows for `me` and federation reads, cached per instance (USER_CACHE_SIZE). */
  readonly users: UserCache;
  /** For what happens after a response (mail sent in the background); never given a secret. */
  readonly logger: Logger;
  /** The second factor: the MFA key's uses (TOTP secrets, recovery codes) and the sign-in's mfaTokens. */
  readonly mfa: MfaKit;
  /** The WebAuthn relying party (WEBAUTHN_*): passkey options, challenges and checks. */
  readonly webauthn: WebAuthn;
  /** What the MFA step asks of passkeys (src/mfa/passkeys.ts). */
  readonly passkeyFactor?: PasskeyFactor;
}

/**
 * The request's refresh cookie (tokenDelivery COOKIE), as the transport offers it: over HTTP it can be read (by
 * `refresh` alone) and set or cleared in the answer; over a WebSocket it can be neither.
 */
export interface RefreshCookie {
  /** Whether this answer can carry a Set-Cookie (false over a WebSocket). */
  readonly settable: boolean;
  /**
   * Whether the request carries a refresh cookie of `sessionId`: only then does its holder take this answer's
   * Set-Cookie for that session (a browser ignores it on a request sent without credentials). Never a credential.
   */
  carries(sessionId: string): boolean;
  /**
   * The refresh token in the request's cookie, undefined without one. FORBIDDEN unless the request passed CSRF
   * prevention and its Origin, when it has one, is allowed: only then may the cookie act as a credential.
   */
  read(): Promise<string | undefined>;
  /** Sets the cookie to `token` in the answer, expiring with the token. */
  set(token: string, expiresAt: Date): void;
  /** Clears the cookie in the answer (Max-Age=0). */
  clear(): void;
}

export interface Context {
  /** Claims of a verified, unrevoked user's access token; null otherwise (also `call.caller`). */
  readonly auth: AccessClaims | null;
  /** Claims of a verified, unrevoked service token (client credentials): scopes, no user; null otherwise. */
  readonly service: ServiceClaims | null;
  /** What every flow takes: the request's EntityManager (forked on first use), its meta, the caller. */
  readonly call: Call;
  readonly services: Services;
  /** Users this request has just signed in (register, login, refresh), with their session: they may read their own payload. */
  readonly signedIn: Map<string, string>;
  readonly refreshCookie: RefreshCookie;
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
