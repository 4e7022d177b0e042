// This instance's cache of users' rows for the hot reads (`me`, federation entities): a bounded LRU filled on
// first read, emptied of a user on every committed change to its row on any instance (user-writes.ts, the bus),
// neither read nor filled while the bus cannot deliver those changes, and re-read after a while in any case.
import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock.ts';
import type { RevocationBus, UserChangedEvent } from '../events/revocation-bus.ts';
import type { UserRow } from './entities.ts';
import type { Em } from './orm.ts';
import { findUsersByIds } from './user-reads.ts';

/** How long a cached row is served before it is read again, whatever the bus says (60 s). */
export const USER_CACHE_MAX_AGE_MS = 60_000;

export class UserCache {
  /** Past `capacity` the least recently used row goes (a hit counts as a use). */
  readonly #rows: LRUCache<string, { readonly row: UserRow; readonly until: number }>;
  readonly #capacity: number;
  readonly #clock: Clock;
  readonly #maxAgeMs: number;
  readonly #bus: RevocationBus;
  /**
   * Counts invalidations. A read fills the cache only if none happened while it ran: a change committed and told
   * during the read may have been read before its commit, and the row would otherwise stay stale.
   */
  #epoch = 0;
  readonly #unsubscribe: (() => void)[];
  readonly #statements: Em;

  /**
   * `capacity` 0 disables the cache (every read goes to the database). `maxAgeMs` bounds how long a row is served
   * without reading it again: the bus tells of every change the service makes, but not of one made outside it
   * (a database edited by hand, the admin CLI on an instance without Redis). `statements`: the ORM's root
   * EntityManager, on which missing rows are read (committed rows only, outside any request's transaction; no
   * EntityManager is forked for a read).
   */
  constructor(capacity: number, bus: RevocationBus, clock: Clock, maxAgeMs: number, statements: Em) {
    this.#capacity = capacity;
    // Bounded by a size of 1 a row rather than by `max`, for which lru-cache allocates its arrays up front (hundreds
    // of MB at the largest USER_CACHE_SIZE allowed, however few users come); at least 1, as it requires, and with
    // capacity 0 nothing is ever read from or put in it.
    this.#rows = new LRUCache({ maxSize: Math.max(capacity, 1), sizeCalculation: () => 1 });
    this.#statements = statements;
    this.#clock = clock;
    this.#maxAgeMs = maxAgeMs;
    this.#bus = bus;
    this.#unsubscribe = [
      bus.subscribeUserChanged((event) => this.invalidate(event)),
      // Going down: changes may now be missed. Coming back: some were. Either way nothing cached may be kept.
      bus.onLiveness(() => this.clear()),
    ];
  }

  get size(): number {
    return this.#rows.size;
  }

  /** The rows of `ids` that exist (any order), from the cache where it may serve, else from the database. */
  async findByIds(ids: readonly string[]): Promise<UserRow[]> {
    if (this.#capacity === 0 || !this.#bus.live()) return findUsersByIds(this.#statements, ids);
    const found: UserRow[] = [];
    const missing: string[] = [];
    const now = this.#clock.now();
    for (const id of ids) {
      const entry = this.#rows.get(id);
      if (entry && entry.until > now) {
        // A copy per read: callers may add to what they get (Apollo's federation sets __typename on entities).
        found.push({ ...entry.row });
      } else {
        missing.push(id);
      }
    }
    if (missing.length === 0) return found;
    const epoch = this.#epoch;
    const loaded = await findUsersByIds(this.#statements, missing);
    // The root EntityManager joins a transaction whose callback this runs in (MikroORM's TransactionContext), and
    // there a read may see that transaction's uncommitted writes: never cache those.
    if (epoch === this.#epoch && this.#bus.live() && !this.#statements.isInTransaction()) {
      for (const row of loaded) {
        this.#rows.set(row.id, { row: { ...row }, until: now + this.#maxAgeMs });
      }
    }
    return found.concat(loaded);
  }

  invalidate(event: UserChangedEvent): void {
    this.#epoch++;
    if ('all' in event) this.#rows.clear();
    else for (const id of event.userIds) this.#rows.delete(id);
  }

  clear(): void {
    this.#epoch++;
    this.#rows.clear();
  }

  close(): void {
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    this.#rows.clear();
  }
}
