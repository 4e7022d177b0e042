// The revoked set a verifier refuses tokens by: revoked sessions and client-wide revocations, each kept until no
// token it covers can still verify (its tokensExpireBy plus the clock tolerance), then forgotten.
import type { VerifiedClaims } from './claims.ts';
import type { VerificationReason } from './errors.ts';

/**
 * One entry of the server's revocation feed (`type Revocation` of API.md). With `sessionId`, every token of that
 * session is revoked; with `clientId` alone, every token of that client issued at or before `revokedAt`.
 */
export interface Revocation {
  readonly sessionId?: string | null;
  readonly clientId?: string | null;
  readonly userId?: string | null;
  /** The server's RevocationReason (LOGOUT, REVOKED_BY_ADMIN, CLIENT_DISABLED, CLIENT_SECRET_ROTATED, …). */
  readonly reason?: string;
  /** When it was revoked: an ISO 8601 string or milliseconds since the epoch. Defaults to now. */
  readonly revokedAt?: string | number;
  /** After this instant no token it covers can still verify: ISO 8601 or milliseconds. Defaults to never. */
  readonly tokensExpireBy?: string | number;
}

interface ClientEntry {
  readonly revokedAt: number;
  readonly forgetAt: number;
  /** A secret rotation ends the client's service tokens only, as the server does; anything else every token. */
  readonly serviceOnly: boolean;
}

const toMillis = (value: string | number | undefined, fallback: number): number => {
  if (value === undefined) return fallback;
  const ms = typeof value === 'number' ? value : Date.parse(value);
  return Number.isFinite(ms) ? ms : fallback;
};

/** The revoked sessions and clients, with the rule that turns them into a refusal. */
export class RevocationList {
  readonly #sessions = new Map<string, number>();
  readonly #clients = new Map<string, ClientEntry[]>();
  readonly #now: () => number;
  readonly #toleranceMs: number;

  /** `toleranceMs`: the verifier's clock tolerance, which lets a token live that much past its `exp`. */
  constructor(now: () => number, toleranceMs: number) {
    this.#now = now;
    this.#toleranceMs = toleranceMs;
  }

  /** Adds one revocation; one with neither a session nor a client is ignored. */
  add(revocation: Revocation): void {
    const now = this.#now();
    const revokedAt = toMillis(revocation.revokedAt, now);
    const forgetAt = toMillis(revocation.tokensExpireBy, Number.POSITIVE_INFINITY) + this.#toleranceMs;
    if (forgetAt <= now) return;
    if (revocation.sessionId) {
      const known = this.#sessions.get(revocation.sessionId) ?? 0;
      this.#sessions.set(revocation.sessionId, Math.max(known, forgetAt));
    } else if (revocation.clientId) {
      const entries = (this.#clients.get(revocation.clientId) ?? []).filter((entry) => entry.forgetAt > now);
      entries.push({ revokedAt, forgetAt, serviceOnly: revocation.reason === 'CLIENT_SECRET_ROTATED' });
      this.#clients.set(revocation.clientId, entries);
    }
  }

  /** Why these (otherwise valid) claims are refused now, or undefined. */
  refusal(claims: VerifiedClaims): VerificationReason | undefined {
    const now = this.#now();
    if (claims.kind === 'user') {
      const forgetAt = this.#sessions.get(claims.sid);
      if (forgetAt !== undefined) {
        if (forgetAt > now) return 'SESSION_REVOKED';
        this.#sessions.delete(claims.sid);
      }
    }
    const entries = this.#clients.get(claims.client_id);
    if (entries) {
      // The server's rule (revocationCutoffSeconds): refused when iat, in whole seconds, is not after revokedAt.
      for (const entry of entries)
        if (
          entry.forgetAt > now &&
          (!entry.serviceOnly || claims.kind === 'service') &&
          claims.iat * 1000 <= entry.revokedAt
        )
          return 'CLIENT_DISABLED';
    }
    return undefined;
  }

  /** Forgets every entry past its time. */
  prune(): void {
    const now = this.#now();
    for (const [id, forgetAt] of this.#sessions) if (forgetAt <= now) this.#sessions.delete(id);
    for (const [id, entries] of this.#clients) {
      const kept = entries.filter((entry) => entry.forgetAt > now);
      if (kept.length === 0) this.#clients.delete(id);
      else this.#clients.set(id, kept);
    }
  }

  /** How many sessions and clients are held revoked. */
  get size(): { readonly sessions: number; readonly clients: number } {
    return { sessions: this.#sessions.size, clients: this.#clients.size };
  }
}
