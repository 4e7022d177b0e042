// The revocation feed (API.md "Revocations for every service"): every revocation still in force, from memory
// (revoked sessions, the client registry), and a stream of each new one heard on the bus, for services that
// verify our tokens themselves and hold `sessions:feed`.
import type { Logger } from 'pino';
import { type ClientInfo, type ClientRegistry, revocationCutoffSeconds } from '../clients/registry.ts';
import type { Clock } from '../clock.ts';
import type { RevocationReason } from '../db/entities.ts';
import type { ClientChangedEvent, RevocationBus, SessionRevokedEvent } from '../events/revocation-bus.ts';
import type { RevokedSessions } from './revoked-sessions.ts';

/** One revocation as the feed tells it: a session's (`sessionId` set) or a client's (`sessionId` null). */
export interface FeedRevocation {
  readonly sessionId: string | null;
  readonly clientId: string | null;
  readonly userId: string | null;
  readonly reason: RevocationReason;
  readonly revokedAt: Date;
  /** After this instant no token the revocation covers can still verify. */
  readonly tokensExpireBy: Date;
}

/** Who reads the feed: the claims of the token that opened the subscription. */
export interface FeedConsumer {
  readonly clientId: string;
  /** Seconds since the epoch, as in the token. */
  readonly iat: number;
  readonly exp: number;
  /** A service token (client credentials), refused by its client's revocations. */
  readonly service: boolean;
}

export interface RevocationFeedDeps {
  readonly bus: RevocationBus;
  readonly clients: ClientRegistry;
  readonly revoked: RevokedSessions;
  readonly clock: Clock;
  readonly tokens: { readonly accessTokenTtlMs: number; readonly clockToleranceMs: number };
  readonly logger: Logger;
  /** +1 when a feed subscription opens, -1 when it ends (auth_revocation_feed_consumers). */
  readonly onConsumersChange?: (delta: 1 | -1) => void;
  /** Revocations sent to subscribers (auth_revocation_feed_events_total). */
  readonly onSent?: (count: number) => void;
}

/** How often the feed compares its view of the clients with the registry (which a database reload may change). */
const TICK_MS = 500;
/** How often a disabled client's revocation is announced again, with a later revokedAt. */
export const DISABLED_CLIENT_REANNOUNCE_MS = 5_000;
/** What a new subscription is told first: the revocations this instance heard in this last while. */
export const FEED_REPLAY_MS = 10_000;
const MAX_REPLAYED = 10_000;
/** A subscriber this far behind is ended (it reads the list again when it comes back). */
const MAX_QUEUED = 100_000;

/** A feed subscription's stream: registered when made, not when first read, so nothing falls between. */
class FeedStream implements AsyncIterableIterator<FeedRevocation> {
  readonly consumer: FeedConsumer;
  readonly #queue: FeedRevocation[] = [];
  #waiting: ((step: IteratorResult<FeedRevocation>) => void) | undefined;
  #done = false;
  readonly #onEnd: () => void;

  constructor(consumer: FeedConsumer, onEnd: () => void) {
    this.consumer = consumer;
    this.#onEnd = onEnd;
  }

  /** Queues one revocation; false when the stream is over (ended, or too far behind and ended now). */
  push(revocation: FeedRevocation): boolean {
    if (this.#done) return false;
    if (this.#waiting) {
      const wake = this.#waiting;
      this.#waiting = undefined;
      wake({ done: false, value: revocation });
      return true;
    }
    if (this.#queue.length >= MAX_QUEUED) {
      this.end();
      return false;
    }
    this.#queue.push(revocation);
    return true;
  }

  /** Completes the stream once what is queued has been read. */
  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#onEnd();
    if (this.#waiting) {
      const wake = this.#waiting;
      this.#waiting = undefined;
      wake({ done: true, value: undefined });
    }
  }

  next(): Promise<IteratorResult<FeedRevocation>> {
    const value = this.#queue.shift();
    if (value) return Promise.resolve({ done: false, value });
    if (this.#done) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  return(): Promise<IteratorResult<FeedRevocation>> {
    this.#queue.length = 0;
    this.end();
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<FeedRevocation> {
    return this;
  }
}

/** What the feed last saw of a client. */
interface SeenClient {
  readonly disabled: boolean;
  readonly tokensRevokedAt: number | null;
  readonly updatedAt: number;
  /** When (clock) its revocation was last announced, for a disabled client's re-announcements. */
  announcedAt: number;
}

export class RevocationFeed {
  readonly #deps: RevocationFeedDeps;
  /** revokedAt + this = tokensExpireBy: a token's lifetime plus the clock tolerance (API.md). */
  readonly #windowMs: number;
  /** How far ahead of now a disabled client's revokedAt is set: until its next announcement has arrived. */
  readonly #aheadMs: number;
  readonly #streams = new Set<FeedStream>();
  readonly #seen = new Map<string, SeenClient>();
  /** What was sent lately (performance.now() when heard), replayed to each new subscription. */
  readonly #recent: { readonly heardAt: number; readonly revocation: FeedRevocation }[] = [];
  readonly #stop: (() => void)[] = [];
  readonly #ticker: NodeJS.Timeout;

  constructor(deps: RevocationFeedDeps) {
    this.#deps = deps;
    const { accessTokenTtlMs, clockToleranceMs } = deps.tokens;
    this.#windowMs = accessTokenTtlMs + clockToleranceMs;
    // A token of a disabled client can only come from an instance that has not heard of it yet, with an iat up to
    // one tolerance ahead (clock skew); the next announcement comes within a period and a tick, plus transit.
    this.#aheadMs = DISABLED_CLIENT_REANNOUNCE_MS + TICK_MS + clockToleranceMs + 1_000;
    const now = deps.clock.now();
    for (const client of deps.clients.list()) {
      this.#seen.set(client.id, {
        disabled: client.disabled,
        tokensRevokedAt: client.tokensRevokedAt,
        updatedAt: client.updatedAt,
        announcedAt: now,
      });
    }
    this.#stop.push(deps.bus.subscribe((event) => this.#sessionsRevoked(event)));
    this.#stop.push(deps.bus.subscribeClientChanged((event) => this.#clientChanged(event)));
    this.#ticker = setInterval(() => this.#tick(), TICK_MS);
    this.#ticker.unref();
  }

  /** Every revocation still in force: sessions whose tokens may still verify, and client-wide revocations. */
  list(): FeedRevocation[] {
    const now = this.#deps.clock.now();
    const sessions = this.#deps.revoked
      .list()
      .filter((session) => session.revokedAt + this.#windowMs > now)
      .sort((a, b) => a.revokedAt - b.revokedAt || (a.sessionId < b.sessionId ? -1 : 1))
      .map((session) =>
        this.#entry({
          sessionId: session.sessionId,
          clientId: session.clientId,
          userId: session.userId,
          reason: session.reason,
          revokedAt: session.revokedAt,
        }),
      );
    const clients: FeedRevocation[] = [];
    for (const client of this.#deps.clients.list()) {
      const revocation = this.#clientRevocation(client, now);
      if (revocation && revocation.tokensExpireBy.getTime() > now) clients.push(revocation);
    }
    return [...sessions, ...clients];
  }

  /**
   * Opens a subscription: registered at once (any revocation heard from now on is queued on it), after the
   * revocations heard in the last FEED_REPLAY_MS. It ends when the consumer's token expires or is refused by its
   * client's revocation (after that revocation itself), when it falls too far behind, or when it is returned.
   */
  open(consumer: FeedConsumer): AsyncIterableIterator<FeedRevocation> {
    const stream = new FeedStream(consumer, () => {
      this.#streams.delete(stream);
      this.#deps.onConsumersChange?.(-1);
    });
    this.#streams.add(stream);
    this.#deps.onConsumersChange?.(1);
    this.#forget();
    let sent = 0;
    for (const { revocation } of this.#recent) if (stream.push(revocation)) sent++;
    if (sent > 0) this.#deps.onSent?.(sent);
    this.#endIfRefused(stream);
    return stream;
  }

  close(): void {
    clearInterval(this.#ticker);
    for (const stop of this.#stop) stop();
    for (const stream of [...this.#streams]) stream.end();
  }

  #entry(revocation: Omit<FeedRevocation, 'revokedAt' | 'tokensExpireBy'> & { revokedAt: number }): FeedRevocation {
    return {
      ...revocation,
      revokedAt: new Date(revocation.revokedAt),
      tokensExpireBy: new Date(revocation.revokedAt + this.#windowMs),
    };
  }

  /**
   * A client's revocation, or undefined when it has none. Its revokedAt is the first whole second after
   * tokensRevokedAt (`revocationCutoffSeconds`): a token whose iat is before it is refused, one issued in the
   * same second but after the revocation carries that second as its iat and is not. While the client is
   * disabled every token of it is refused, so revokedAt is then set ahead of now, past any iat a token issued
   * until the next announcement could carry.
   */
  #clientRevocation(client: ClientInfo, now: number): FeedRevocation | undefined {
    if (!client.disabled && client.tokensRevokedAt === null) return undefined;
    const cutoffMs = revocationCutoffSeconds(client.tokensRevokedAt) * 1000;
    const revokedAt = client.disabled
      ? Math.max(cutoffMs, revocationCutoffSeconds(now + this.#aheadMs) * 1000)
      : cutoffMs;
    return this.#entry({
      sessionId: null,
      clientId: client.id,
      userId: null,
      reason: client.disabled ? 'CLIENT_DISABLED' : (client.tokensRevokedReason ?? 'CLIENT_SECRET_ROTATED'),
      revokedAt,
    });
  }

  #send(revocation: FeedRevocation): void {
    this.#recent.push({ heardAt: performance.now(), revocation });
    this.#forget();
    let sent = 0;
    for (const stream of [...this.#streams]) if (stream.push(revocation)) sent++;
    if (sent > 0) this.#deps.onSent?.(sent);
  }

  /** Drops from the replay what is older than FEED_REPLAY_MS, or beyond its bound. */
  #forget(): void {
    const oldest = performance.now() - FEED_REPLAY_MS;
    let drop = Math.max(0, this.#recent.length - MAX_REPLAYED);
    while (drop < this.#recent.length && (this.#recent[drop]?.heardAt ?? 0) < oldest) drop++;
    if (drop > 0) this.#recent.splice(0, drop);
  }

  #sessionsRevoked(event: SessionRevokedEvent): void {
    for (const sessionId of event.sessionIds) {
      const clientIds = event.clientIds;
      this.#send(
        this.#entry({
          sessionId,
          clientId: clientIds && Object.hasOwn(clientIds, sessionId) ? (clientIds[sessionId] ?? null) : null,
          userId: event.userId,
          reason: event.reason,
          revokedAt: event.revokedAt,
        }),
      );
    }
  }

  #clientChanged(event: ClientChangedEvent): void {
    this.#observe(event, this.#deps.clock.now());
  }

  /**
   * Compares a client's state with what the feed last saw: a new client-wide revocation (tokensRevokedAt
   * changed) or a client just disabled is announced, and the subscriptions it refuses end after it.
   */
  #observe(client: ClientInfo, now: number): void {
    const seen = this.#seen.get(client.id);
    if (seen && seen.updatedAt > client.updatedAt) return;
    const revokedAnew = client.tokensRevokedAt !== null && client.tokensRevokedAt !== (seen?.tokensRevokedAt ?? null);
    const disabledNow = client.disabled && !seen?.disabled;
    const announce = revokedAnew || disabledNow;
    this.#seen.set(client.id, {
      disabled: client.disabled,
      tokensRevokedAt: client.tokensRevokedAt,
      updatedAt: client.updatedAt,
      announcedAt: announce ? now : (seen?.announcedAt ?? now),
    });
    if (!announce) return;
    const revocation = this.#clientRevocation(client, now);
    if (revocation) this.#send(revocation);
    for (const stream of [...this.#streams])
      if (stream.consumer.clientId === client.id) this.#endIfRefused(stream, client);
  }

  /** Ends a subscription whose token is no longer valid: expired, or refused by its client's state. */
  #endIfRefused(stream: FeedStream, client = this.#deps.clients.get(stream.consumer.clientId)): void {
    const { consumer } = stream;
    const expired = consumer.exp * 1000 <= this.#deps.clock.now();
    const refused =
      !client ||
      client.disabled ||
      (consumer.service && consumer.iat < revocationCutoffSeconds(client.tokensRevokedAt));
    if (expired || refused) stream.end();
  }

  #tick(): void {
    try {
      const now = this.#deps.clock.now();
      // The registry also changes without a bus message (reloaded from the database after or during an outage).
      for (const client of this.#deps.clients.list()) {
        this.#observe(client, now);
        const seen = this.#seen.get(client.id);
        if (client.disabled && seen && now - seen.announcedAt >= DISABLED_CLIENT_REANNOUNCE_MS) {
          seen.announcedAt = now;
          const revocation = this.#clientRevocation(client, now);
          if (revocation) this.#send(revocation);
        }
      }
      for (const stream of [...this.#streams]) this.#endIfRefused(stream);
    } catch (error) {
      this.#deps.logger.error({ err: error }, 'revocation feed check failed');
    }
  }
}
