// Transactions that survive transient conflicts: a deadlock or lock-wait timeout (MySQL/MariaDB) or a busy
// database (SQLite) rolls the whole transaction back, and running it again is the documented remedy.
import { DeadlockException, LockWaitTimeoutException } from '@mikro-orm/core';
import type { Em } from './orm.ts';

/** How many times a transaction runs at most before its conflict reaches the caller. */
export const TRANSACTION_ATTEMPTS = 5;

// MySQL/MariaDB: ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT. SQLite (primary result codes, extended ones included
// by the mask): SQLITE_BUSY, SQLITE_LOCKED.
const MYSQL_TRANSIENT = new Set([1213, 1205]);
const SQLITE_TRANSIENT = new Set([5, 6]);

/**
 * Whether `error` is a conflict that a fresh run of the same transaction can succeed past: MikroORM's
 * DeadlockException and LockWaitTimeoutException, or the same errors raw from mysql2 or node:sqlite (queries
 * that go through Kysely are not converted by the ORM).
 */
export function isTransientConflict(error: unknown): boolean {
  if (error instanceof DeadlockException || error instanceof LockWaitTimeoutException) return true;
  if (typeof error !== 'object' || error === null) return false;
  const { errno, errcode, code } = error as { errno?: unknown; errcode?: unknown; code?: unknown };
  if (typeof errno === 'number' && MYSQL_TRANSIENT.has(errno)) return true;
  if (code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT') return true;
  return typeof errcode === 'number' && SQLITE_TRANSIENT.has(errcode & 0xff);
}

/**
 * Runs `attempt` and runs it again (up to TRANSACTION_ATTEMPTS times in all, after a short random pause that
 * grows with each try) while it fails with a transient conflict. `attempt` must be a whole transaction: it is
 * re-run from the start, so it must not have effects outside the database before it commits.
 */
export async function retryTransient<T>(attempt: () => Promise<T>): Promise<T> {
  for (let run = 1; ; run++) {
    try {
      return await attempt();
    } catch (error) {
      if (run >= TRANSACTION_ATTEMPTS || !isTransientConflict(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * 2 ** run));
    }
  }
}

/**
 * `em.transactional(work)`, re-run on transient conflicts (see retryTransient). Only the outermost transaction is
 * re-run: inside another one, a conflict has rolled the whole of it back, so it goes to the outer one's caller.
 * `work` must leave nothing behind that a second run would trip over (entities it changes are changed again).
 */
export function transactional<T>(em: Em, work: (tx: Em) => Promise<T>): Promise<T> {
  const run = () => em.transactional((tx) => work(tx as Em));
  return em.isInTransaction() ? run() : retryTransient(run);
}
