// The revoked set a verifier refuses tokens by: revoked sessions and client-wide revocations, each kept until no
// token it covers can still verify (its tokensExpireBy plus the clock tolerance), then forgotten.
import type { VerifiedClaims } from './claims.ts';
import type { VerificationReason } from './errors.ts';

/**
 * One entry of the server's revocation feed (`type Revocation` of API.md). With `sessionId`, every token of that
 * session is revoked; with `clientId` alone, every token of that client issued before `revokedAt`.
 */
export interface Revocation {
  readonly sessionId?: string | null;
  /** With `sessionId` null: every token of this client whose `iat` (seconds) times 1000 is before `revokedAt`. */
  readonly clientId?: string | null;
  readonly userId?: string | null;
  /** The server's RevocationReason (LOGOUT, REVOKED_BY_ADMIN, CLIENT_DISABLED, CLIENT_SECRET_ROTATED, …). */
  readonly reason?: string;
  /** When it was revoked: an ISO 8601 string or milliseconds since the epoch. Defaults to now. */
  readonly revokedAt?: string | number;
  /** After this instant no token it covers can still verify: ISO 8601 or milliseconds. Defaults to never. */
  readonly tokensExpireBy?: string | number;
}

/** The latest cutoff of one kind of client-wide revocation: tokens with `iat * 1000 < before` are refused. */
interface Cutoff {
  readonly before: number;
  readonly forgetAt: number;
}

interface ClientEntry {
  /** Every token of the client (it was disabled, or anything else the server revokes a client for). */
  readonly all?: Cutoff;
  /** Service tokens only: a rotated secret ends the client's service tokens, not its users' (as the server does). */
  readonly service?: Cutoff;
}

const later = (known: Cutoff | undefined, next: Cutoff, now: number): Cutoff =>
  !known || known.forgetAt <= now
    ? next
    : { before: Math.max(known.before, next.before), forgetAt: Math.max(known.forgetAt, next.forgetAt) };

const live = (cutoff: Cutoff | undefined, now: number) => (cutoff && cutoff.forgetAt > now ? cutoff : undefined);

const toMillis = (value: string | number | undefined, fallback: number): number => {
  if (value === undefined) return fallback;
  const ms = typeof value === 'number' ? value : Date.parse(value);
  return Number.isFinite(ms) ? ms : fallback;
};

/** The revoked sessions and clients, with the rule that turns them into a refusal. */
export class RevocationList {
  readonly #sessions = new Map<string, number>();
  readonly #clients = new Map<string, ClientEntry>();
  readonly #now: () => number;
  readonly #toleranceMs: number;
  #addedSincePrune = 0;

  /** `toleranceMs`: the verifier's clock tolerance, which lets a token live that much past its `exp`. */
  constructor(now: () => number, toleranceMs: number) {
    this.#now = now;
    this.#toleranceMs = toleranceMs;
  }

  /** Adds one revocation; one with neither a session nor a client is ignored. */
  add(revocation: Revocation): void {
    const now = this.#now();
    // Bounded by what is in force: a busy feed's expired entries go every thousand additions, not only on lookup.
    if (++this.#addedSincePrune >= 1_000) this.prune();
    const revokedAt = toMillis(revocation.revokedAt, now);
    const forgetAt = toMillis(revocation.tokensExpireBy, Number.POSITIVE_INFINITY) + this.#toleranceMs;
    if (forgetAt <= now) return;
    if (revocation.sessionId) {
      const known = this.#sessions.get(revocation.sessionId) ?? 0;
      this.#sessions.set(revocation.sessionId, Math.max(known, forgetAt));
    } else if (revocation.clientId) {
      // A later revocation of the same client replaces an earlier one (the server announces a disabled client
      // again every few seconds, each time with a later cutoff): one entry per kind, whatever the feed's length.
      const known = this.#clients.get(revocation.clientId) ?? {};
      const cutoff = { before: revokedAt, forgetAt };
      this.#clients.set(
        revocation.clientId,
        revocation.reason === 'CLIENT_SECRET_ROTATED'
          ? { all: live(known.all, now), service: later(known.service, cutoff, now) }
          : { all: later(known.all, cutoff, now), service: live(known.service, now) },
      );
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
    const entry = this.#clients.get(claims.client_id);
    if (entry) {
      // The server's rule: the feed's revokedAt is the first whole second after the revocation (the server's
      // revocationCutoffSeconds), and a token is refused when its iat is before it.
      const issuedAt = claims.iat * 1000;
      const all = live(entry.all, now);
      const service = claims.kind === 'service' ? live(entry.service, now) : undefined;
      if ((all && issuedAt < all.before) || (service && issuedAt < service.before)) return 'CLIENT_DISABLED';
    }
    return undefined;
  }

  /** Forgets every entry past its time. */
  prune(): void {
    this.#addedSincePrune = 0;
    const now = this.#now();
    for (const [id, forgetAt] of this.#sessions) if (forgetAt <= now) this.#sessions.delete(id);
    for (const [id, entry] of this.#clients) {
      const kept = { all: live(entry.all, now), service: live(entry.service, now) };
      if (!kept.all && !kept.service) this.#clients.delete(id);
      else this.#clients.set(id, kept);
    }
  }

  /** How many sessions and clients are held revoked. */
  get size(): { readonly sessions: number; readonly clients: number } {
    return { sessions: this.#sessions.size, clients: this.#clients.size };
  }
}
