// The in-memory set of revoked session ids whose access tokens could still be alive.
// Loaded from the database at start, kept current from the revocation bus; entries drop out
// once every token of the session has expired, so the set stays bounded by the token lifetime.
import type { Clock } from '../clock.ts';
import { AuditEvent, type RevocationReason, Session } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import type { SessionRevokedEvent } from '../events/revocation-bus.ts';

export class RevokedSessions {
  readonly #until = new Map<string, number>();
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #sweeper: NodeJS.Timeout;

  /** `ttlMs` is the longest an access token can outlive its session's revocation (lifetime plus clock tolerance). */
  constructor(clock: Clock, ttlMs: number) {
    this.#clock = clock;
    this.#ttlMs = ttlMs;
    this.#sweeper = setInterval(() => this.sweep(), Math.min(ttlMs, 60_000));
    this.#sweeper.unref();
  }

  add(sessionId: string, revokedAt: number): void {
    this.#until.set(sessionId, revokedAt + this.#ttlMs);
  }

  has(sessionId: string): boolean {
    const until = this.#until.get(sessionId);
    return until !== undefined && until > this.#clock.now();
  }

  get size(): number {
    return this.#until.size;
  }

  sweep(): void {
    const now = this.#clock.now();
    for (const [id, until] of this.#until) if (until <= now) this.#until.delete(id);
  }

  /**
   * Loads every revocation recent enough to matter (the database is the source of truth) and returns
   * those this set did not know yet, as events, so that listeners can catch up after an outage.
   */
  async load(em: Em): Promise<SessionRevokedEvent[]> {
    const since = new Date(this.#clock.now() - this.#ttlMs);
    const rows = await em.find(
      Session,
      { revokedAt: { $gt: since } },
      { fields: ['id', 'user', 'revokedAt', 'revokedReason'], disableIdentityMap: true },
    );
    const missed: SessionRevokedEvent[] = [];
    for (const row of rows) {
      if (!row.revokedAt) continue;
      if (!this.#until.has(row.id)) {
        missed.push({
          userId: row.user.id,
          sessionIds: [row.id],
          reason: (row.revokedReason ?? 'REVOKED_BY_ADMIN') as RevocationReason,
          revokedAt: row.revokedAt.getTime(),
        });
      }
      this.add(row.id, row.revokedAt.getTime());
    }
    // A deleted account's sessions are gone from the sessions table; their revocations live on in the
    // (anonymised) audit trail, which keeps the session id and the time.
    const trail = await em.find(
      AuditEvent,
      { type: 'SESSION_REVOKED', createdAt: { $gt: since }, sessionId: { $ne: null } },
      { fields: ['sessionId', 'createdAt'], disableIdentityMap: true },
    );
    for (const row of trail) {
      if (row.sessionId && !this.#until.has(row.sessionId)) this.add(row.sessionId, row.createdAt.getTime());
    }
    return missed;
  }

  close(): void {
    clearInterval(this.#sweeper);
  }
}
