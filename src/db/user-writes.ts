// Every change to a users row, told once it is committed (to the bus, which drops cached rows on every instance):
// the ORM's flushes of User and native updates and deletes alike, seen where they all pass, the driver.
import type { EventSubscriber, TransactionEventArgs } from '@mikro-orm/core';
import type { UserChangedEvent } from '../events/revocation-bus.ts';
import type { Orm } from './orm.ts';

const USER = 'User';

/** What a transaction (or a flush outside one) has changed so far: some users, or possibly any (`all`). */
type Changed = Set<string> | 'all';

const merge = (into: Changed | undefined, more: Changed): Changed => {
  if (into === 'all' || more === 'all') return 'all';
  if (!into) return new Set(more);
  for (const id of more) into.add(id);
  return into;
};

const toEvent = (changed: Changed): UserChangedEvent => (changed === 'all' ? { all: true } : { userIds: [...changed] });

/**
 * The ids a native update or delete's condition names: `{ id }` or `{ id: { $in } }`; anything else might touch
 * any user, so it is `all` (a cache is dropped whole rather than left stale).
 */
function idsOfCondition(where: unknown): Changed {
  if (typeof where === 'string') return new Set([where]);
  if (typeof where !== 'object' || where === null || Array.isArray(where)) return 'all';
  const keys = Object.keys(where);
  if (keys.length !== 1 || keys[0] !== 'id') return 'all';
  const id = (where as { id: unknown }).id;
  if (typeof id === 'string') return new Set([id]);
  if (typeof id === 'object' && id !== null && Object.keys(id).length === 1) {
    const list = (id as { $in?: unknown }).$in;
    if (Array.isArray(list) && list.every((item) => typeof item === 'string')) return new Set(list as string[]);
  }
  return 'all';
}

type Transaction = NonNullable<TransactionEventArgs['transaction']>;

const isSavepoint = (transaction: Transaction): boolean => typeof transaction.savepointName === 'string';

/**
 * Follows the writes of users on one Orm. Every UPDATE or DELETE of users passes through the driver's
 * nativeUpdate, nativeUpdateMany or nativeDelete: the ORM's flushes of User, em.nativeUpdate/nativeDelete alike
 * (an INSERT needs nothing: no row is cached before it exists). Inside a transaction, changes are kept under its
 * outermost transaction (a savepoint's under its parent's) and told after that one commits, never before: an
 * instance reading between the write and the commit would otherwise cache the old row after being told. A
 * statement outside any transaction has committed when it returns. `tell` must not throw.
 */
export class UserWrites implements EventSubscriber {
  readonly #tell: (event: UserChangedEvent) => Promise<void>;
  /** Changes per outermost transaction, until it commits or rolls back. */
  readonly #pending = new WeakMap<object, Changed>();
  /** Savepoint → its parent transaction. */
  readonly #parents = new WeakMap<object, object>();
  /** The parent of a savepoint being opened on this EntityManager (told before the savepoint exists). */
  readonly #opening = new WeakMap<object, object>();

  constructor(tell: (event: UserChangedEvent) => Promise<void>) {
    this.#tell = tell;
  }

  /** Follows `orm`'s transactions, and its driver's updates and deletes of users. */
  attach(orm: Orm): void {
    orm.em.getEventManager().registerSubscriber(this);
    const driver = orm.em.getDriver() as unknown as Record<string, unknown>;
    const metadata = orm.getMetadata();
    // Wrapped on this Orm's driver instance: native statements fire no ORM event.
    for (const method of ['nativeUpdate', 'nativeUpdateMany', 'nativeDelete'] as const) {
      const original = driver[method] as (...args: unknown[]) => Promise<unknown>;
      driver[method] = async (entityName: unknown, where: unknown, ...rest: unknown[]) => {
        const result = await original.call(driver, entityName, where, ...rest);
        if (metadata.find(entityName as never)?.className === USER) {
          const options = (method === 'nativeDelete' ? rest[0] : rest[1]) as { ctx?: object } | undefined;
          const changed = Array.isArray(where)
            ? where.map(idsOfCondition).reduce<Changed>((all, ids) => merge(all, ids), new Set())
            : idsOfCondition(where);
          await this.#record(options?.ctx, changed);
        }
        return result;
      };
    }
  }

  #root(transaction: object): object {
    let current = transaction;
    for (let parent = this.#parents.get(current); parent; parent = this.#parents.get(current)) current = parent;
    return current;
  }

  /** Keeps `changed` until `ctx`'s outermost transaction commits; tells it now when there is no transaction. */
  async #record(ctx: object | undefined, changed: Changed): Promise<void> {
    if (!ctx) return this.#tell(toEvent(changed));
    const root = this.#root(ctx);
    this.#pending.set(root, merge(this.#pending.get(root), changed));
  }

  beforeTransactionStart({ em, transaction }: TransactionEventArgs): void {
    // Opening a savepoint, the ORM names the parent transaction here; the savepoint itself comes next.
    if (transaction) this.#opening.set(em, transaction);
    else this.#opening.delete(em);
  }

  afterTransactionStart({ em, transaction }: TransactionEventArgs): void {
    const parent = this.#opening.get(em);
    this.#opening.delete(em);
    if (transaction && parent && isSavepoint(transaction)) this.#parents.set(transaction, parent);
  }

  async afterTransactionCommit({ transaction }: TransactionEventArgs): Promise<void> {
    if (!transaction || isSavepoint(transaction)) return;
    const changed = this.#pending.get(transaction);
    if (!changed) return;
    this.#pending.delete(transaction);
    await this.#tell(toEvent(changed));
  }

  afterTransactionRollback({ transaction }: TransactionEventArgs): void {
    // A savepoint rolled back keeps its changes under the outer transaction: told needlessly, never missed.
    if (transaction && !isSavepoint(transaction)) this.#pending.delete(transaction);
  }
}
