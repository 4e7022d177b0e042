// "A revoked session's token is refused at once", in one file: the in-memory set of revoked session ids whose
// access tokens could still be alive, loaded from the database at start, kept current from the revocation bus,
// reloaded after a bus outage, and read from the database every half second while the bus is down. While the bus
// is live, the last two minutes of revocations are also read every second, for a revocation that was committed but
// never published (its instance stopped in between). Entries drop out once every token of the session has
// expired, so the set stays bounded by the token lifetime.

import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import { AuditEvent, REVOCATION_REASONS, type RevocationReason, Session } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import type { RevocationBus, SessionRevokedEvent } from '../events/revocation-bus.ts';

/** A revoked session as this instance knows it (the revocation feed lists these). */
export interface RevokedSession {
  readonly sessionId: string;
  /** Null for a deleted account's session read back from the (anonymised) audit trail. */
  readonly userId: string | null;
  /** Null when the revocation did not say (an older instance's message, a deleted account's session). */
  readonly clientId: string | null;
  readonly reason: RevocationReason;
  /** Milliseconds since the epoch. */
  readonly revokedAt: number;
}

/** How often, while the bus is live, the recent revocations are read from the database (ms). */
export const RECONCILE_EVERY_MS = 1_000;
/**
 * How old a revocation must be before a read counts it as never published rather than still on its way (ms):
 * its instance publishes within milliseconds of the commit. `revokedAt` is taken inside the transaction, once the
 * session rows are locked (Sessions.revokeIn), so it is older than its commit by what the transaction still does
 * after that, lock waits included: a revocation committed later than this after its stamp is read as never
 * published and announced once more, which is harmless.
 */
export const RECONCILE_GRACE_MS = 2_000;
/**
 * How far back those reads look (ms). `revokedAt` is stamped after the locking read of the session rows, so waits
 * for those locks and for anything the transaction locked before them no longer count; what remains between the
 * stamp and the commit is the rest of the transaction: the UPDATE of the rows, the caller's statements after the
 * revocation (a deleted account's rows, a disabled client's) and the audit rows written at commit. Each of those
 * statements waits for a lock at most innodb_lock_wait_timeout (50 s by default); past it the statement fails and
 * `transactional` runs the whole transaction again, with a fresh stamp. Only a transaction whose statements after
 * the stamp wait longer than this window in all (three waits of nearly the whole default timeout) commits a
 * revocation that these reads never see.
 */
export const RECONCILE_WINDOW_MS = 120_000;

/** How many session ids one read by primary key names. */
const MAX_IDS_PER_READ = 1_000;

interface Entry extends RevokedSession {
  /** Until when a token of the session could still verify (ms): the entry leaves the set then. */
  readonly until: number;
}

export class RevokedSessions {
  readonly #until = new Map<string, Entry>();
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #sweeper: NodeJS.Timeout;
  #poller: NodeJS.Timeout | undefined;
  /** A catch-up after a bus outage failed (the database down too): `poll` reads everything until one succeeds. */
  #behind = false;

  constructor(clock: Clock, tokens: { accessTokenTtlMs: number; clockToleranceMs: number }) {
    this.#clock = clock;
    // The longest a token of a revoked session can still verify: issued up to one tolerance after the revocation
    // (clock skew between instances), a lifetime plus one tolerance (the verifier's bound on exp - iat), plus
    // one tolerance on exp.
    const ttlMs = tokens.accessTokenTtlMs + 3 * tokens.clockToleranceMs;
    this.#ttlMs = ttlMs;
    this.#sweeper = setInterval(() => this.sweep(), Math.min(ttlMs, 60_000));
    this.#sweeper.unref();
  }

  add(
    sessionId: string,
    revokedAt: number,
    about: Partial<Pick<RevokedSession, 'userId' | 'clientId' | 'reason'>> = {},
  ): void {
    const known = this.#until.get(sessionId);
    this.#until.set(sessionId, {
      sessionId,
      // What a later, less informed source (the audit trail) does not say is kept from what was known.
      userId: about.userId ?? known?.userId ?? null,
      clientId: about.clientId ?? known?.clientId ?? null,
      reason: about.reason ?? known?.reason ?? 'REVOKED_BY_ADMIN',
      revokedAt,
      until: revokedAt + this.#ttlMs,
    });
  }

  has(sessionId: string): boolean {
    const entry = this.#until.get(sessionId);
    return entry !== undefined && entry.until > this.#clock.now();
  }

  /** The revoked sessions whose tokens could still verify now, from memory (no database read). */
  list(): RevokedSession[] {
    const now = this.#clock.now();
    const live: RevokedSession[] = [];
    for (const { until, ...session } of this.#until.values()) if (until > now) live.push(session);
    return live;
  }

  get size(): number {
    return this.#until.size;
  }

  sweep(): void {
    const now = this.#clock.now();
    for (const [id, entry] of this.#until) if (entry.until <= now) this.#until.delete(id);
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
      { fields: ['id', 'user', 'revokedAt', 'revokedReason', 'clientId'], disableIdentityMap: true },
    );
    return [...this.#learn(rows), ...(await this.#learnDeleted(em, { $gt: since }))];
  }

  /**
   * Reads the sessions revoked between RECONCILE_WINDOW_MS and RECONCILE_GRACE_MS ago that this set does not know:
   * revocations committed but never published, because their instance stopped (or lost Redis for good) between
   * the commit and the PUBLISH. Adds them and returns them as events. One index range read of ids (revoked_at),
   * plus one read by primary key when some are missing; and one range read of the anonymised audit trail
   * (user_id null, created_at) for a deleted account's sessions, gone from the table with the account.
   */
  async loadUnpublished(em: Em): Promise<SessionRevokedEvent[]> {
    const now = this.#clock.now();
    const window = { $gt: new Date(now - RECONCILE_WINDOW_MS), $lte: new Date(now - RECONCILE_GRACE_MS) };
    const recent = await em.find(Session, { revokedAt: window }, { fields: ['id'], disableIdentityMap: true });
    const unknown = recent.map((row) => row.id).filter((id) => !this.#until.has(id));
    const rows = [];
    // In slices: a statement names at most 32,766 values on SQLite (a client disabled with more sessions open).
    for (let from = 0; from < unknown.length; from += MAX_IDS_PER_READ) {
      const ids = unknown.slice(from, from + MAX_IDS_PER_READ);
      rows.push(
        ...(await em.find(
          Session,
          { id: { $in: ids } },
          { fields: ['id', 'user', 'revokedAt', 'revokedReason', 'clientId'], disableIdentityMap: true },
        )),
      );
    }
    return [...this.#learn(rows), ...(await this.#learnDeleted(em, window))];
  }

  /**
   * A deleted account's sessions are gone from the sessions table; their revocations live on in the anonymised
   * audit trail (user id null), which keeps the session id and the time. Adds those revoked within `createdAt`
   * that this set did not know; returns them as events, without a user or a client (the trail no longer says).
   */
  async #learnDeleted(em: Em, createdAt: { $gt: Date; $lte?: Date }): Promise<SessionRevokedEvent[]> {
    const trail = await em.find(
      AuditEvent,
      { type: 'SESSION_REVOKED', userId: null, createdAt, sessionId: { $ne: null } },
      { fields: ['sessionId', 'createdAt', 'detail'], disableIdentityMap: true },
    );
    const missed: SessionRevokedEvent[] = [];
    for (const row of trail) {
      if (!row.sessionId || this.#until.has(row.sessionId)) continue;
      const revokedAt = row.createdAt.getTime();
      const reason = reasonOf(row.detail);
      missed.push({ userId: null, sessionIds: [row.sessionId], reason, revokedAt });
      this.add(row.sessionId, revokedAt, { reason });
    }
    return missed;
  }

  /** Adds revoked session rows; returns, as events, those this set did not know. */
  #learn(
    rows: readonly {
      id: string;
      user: { id: string };
      revokedAt?: Date | null;
      revokedReason?: string | null;
      clientId: string;
    }[],
  ): SessionRevokedEvent[] {
    const missed: SessionRevokedEvent[] = [];
    for (const row of rows) {
      if (!row.revokedAt) continue;
      const reason = (row.revokedReason ?? 'REVOKED_BY_ADMIN') as RevocationReason;
      if (!this.#until.has(row.id)) {
        missed.push({
          userId: row.user.id,
          sessionIds: [row.id],
          reason,
          revokedAt: row.revokedAt.getTime(),
          clientIds: { [row.id]: row.clientId },
        });
      }
      this.add(row.id, row.revokedAt.getTime(), { userId: row.user.id, clientId: row.clientId, reason });
    }
    return missed;
  }

  /** Keeps the set current from `bus` (every instance's revocations), after loading what the database has. */
  async follow(bus: RevocationBus, fork: () => Em): Promise<void> {
    bus.subscribe((event) => {
      for (const id of event.sessionIds) {
        const clientId = event.clientIds && Object.hasOwn(event.clientIds, id) ? event.clientIds[id] : undefined;
        this.add(id, event.revokedAt, { userId: event.userId, clientId, reason: event.reason });
      }
    });
    await this.load(fork());
  }

  /**
   * After a bus outage: whatever was revoked meanwhile is in the database. Reloads it and tells this instance's
   * listeners (subscribers, sockets) about each revocation they missed. Never throws: a failure is logged, and
   * `poll` reads everything again every half second until a read succeeds.
   */
  async catchUp(bus: RevocationBus, fork: () => Em, logger: Logger): Promise<void> {
    this.#behind = true;
    try {
      for (const event of await this.load(fork())) bus.deliverLocally(event);
      this.#behind = false;
      logger.info('revocations reloaded after reconnecting to Redis');
    } catch (error) {
      logger.error({ err: error }, 'could not reload revocations after reconnecting to Redis; retrying');
    }
  }

  /**
   * Reads from the database what the bus may not have carried, and tells this instance's listeners (subscribers,
   * sockets) about each revocation it finds missing:
   * - while the bus does not deliver (Redis down: `bus.live()` is false), every revocation recent enough to matter,
   *   every `downEveryMs`, so a session revoked on another instance is refused here within about that long. Once
   *   the bus is live again its reconnection reloads once more (`catchUp`), for what fell between the last read and
   *   the subscription's confirmation; and so does every `downEveryMs` after a catch-up that failed, until one
   *   succeeds;
   * - while it is live, every RECONCILE_EVERY_MS, the revocations committed but never published
   *   (`loadUnpublished`): their instance stopped between commit and PUBLISH. Logged as a warning when found.
   *   After half of RECONCILE_WINDOW_MS without a read that succeeded (the database unreachable, the process
   *   paused), everything again: what was committed at the start of that gap is older by now than the window.
   * A failing read (the database down) is logged once per outage.
   */
  poll(
    bus: RevocationBus,
    fork: () => Em,
    logger: Logger,
    downEveryMs = 500,
    /** Also read each time: what else the bus would have told (the client registry). */
    alsoRead?: (em: Em) => Promise<void>,
  ): void {
    let running = false;
    let failing = false;
    // Two clocks, on purpose: the cadence is the process's wall time (Date.now(), like setInterval's), while the gap
    // since the last good read is measured on this set's clock, the one that stamps the window's bounds and that
    // tests move forward.
    let lastRead = 0;
    // When (this set's clock, as the window's bounds) the last read that succeeded began.
    let readAt = this.#clock.now();
    const poll = async () => {
      const live = bus.live();
      const startedAt = this.#clock.now();
      const behind = this.#behind;
      const everything = !live || behind || startedAt - readAt > RECONCILE_WINDOW_MS / 2;
      if (running || (!everything && Date.now() - lastRead < RECONCILE_EVERY_MS)) return;
      running = true;
      lastRead = Date.now();
      try {
        const missed = everything ? await this.load(fork()) : await this.loadUnpublished(fork());
        readAt = startedAt;
        // Only once the read succeeded while live is nothing left from before the reconnection.
        if (live) this.#behind = false;
        if (live && !behind && missed.length > 0) {
          logger.warn(
            { sessions: missed.length },
            'revocations found in the database that the bus never carried (their instance stopped or lost Redis before publishing)',
          );
        }
        for (const event of missed) bus.deliverLocally(event);
        await alsoRead?.(fork());
        if (failing) logger.info('revocations read from the database again');
        failing = false;
      } catch (error) {
        if (!failing) logger.error({ err: error }, 'could not read revocations from the database');
        failing = true;
      } finally {
        running = false;
      }
    };
    clearInterval(this.#poller);
    this.#poller = setInterval(() => void poll(), downEveryMs);
    this.#poller.unref();
  }

  close(): void {
    clearInterval(this.#sweeper);
    clearInterval(this.#poller);
  }
}

/** The reason an audit row of a revocation recorded (`{"reason": …}`); a deleted account's when it says none. */
function reasonOf(detail: string | null | undefined): RevocationReason {
  try {
    const reason = (JSON.parse(detail ?? '{}') as { reason?: unknown }).reason;
    if ((REVOCATION_REASONS as readonly unknown[]).includes(reason)) return reason as RevocationReason;
  } catch {}
  return 'ACCOUNT_DELETED';
}
