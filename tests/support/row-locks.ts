// Forcing an interleaving on MariaDB: a connection of the test's own holds a row FOR UPDATE while the app's
// statements queue behind it (seen in the process list), then lets them go in the order they queued.
import type { Connection } from 'mysql2/promise';

export interface RowHolder {
  /** Locks the user's row FOR UPDATE in a transaction of the holder's until `release`. */
  holdUser(userId: string): Promise<void>;
  /**
   * Runs `lockingRead` (a SELECT … FOR UPDATE of the rows to hold, `?` placeholders for `params`) in a
   * transaction of the holder's, holding what it locks until `release`.
   */
  hold(lockingRead: string, params: readonly unknown[]): Promise<void>;
  /** How many statements of other connections (the app's) are running that look like `pattern` (SQL LIKE). */
  running(pattern: string): Promise<number>;
  /**
   * Resolves once a statement like `pattern` runs on another connection (blocked on a lock, as a rule), or once
   * `unless()` is true (the request it was for ended without waiting).
   */
  waitingOn(pattern: string, unless?: () => boolean): Promise<void>;
  /** Rolls the holder's transaction back: what waited on it goes on, first come first served. */
  release(): Promise<void>;
  end(): Promise<void>;
}

/** The app's locking read of the user row for a sign-in (src/db/session-opening.ts). */
export const SIGN_IN_USER_LOCK = 'select%from `users`%lock in share mode%';
/** The exclusive lock every second-factor change takes first (src/mfa/user-lock.ts). */
export const MFA_CHANGE_USER_LOCK = 'select%from `users`%for update%';

/** A second connection to the test app's MariaDB database (`databaseUrl` of startTestApp). */
export async function rowHolder(databaseUrl: string): Promise<RowHolder> {
  const { createConnection } = await import('mysql2/promise');
  const connection: Connection = await createConnection(databaseUrl);
  const running = async (pattern: string) => {
    const [rows] = await connection.query(
      'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE id <> CONNECTION_ID() AND info LIKE ?',
      [pattern],
    );
    return Number((rows as { n: number }[])[0]?.n);
  };
  return {
    async holdUser(userId) {
      await connection.beginTransaction();
      await connection.query('SELECT id FROM users WHERE id = ? FOR UPDATE', [userId]);
    },
    async hold(lockingRead, params) {
      await connection.beginTransaction();
      await connection.query(lockingRead, [...params]);
    },
    running,
    async waitingOn(pattern, unless = () => false) {
      for (let i = 0; i < 500; i++) {
        if (unless() || (await running(pattern)) > 0) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      throw new Error(`nothing waits on ${pattern}`);
    },
    release: () => connection.rollback(),
    end: () => connection.end(),
  };
}

/** A request of the app's, and the statement it is expected to wait on (SQL LIKE pattern). */
export interface Contender<T> {
  readonly run: () => Promise<T>;
  readonly waitsOn: string;
}

/**
 * Holds the rows `lockingRead` locks (`?` placeholders for `params`), starts `first` and waits until its statement
 * queues behind them (or it ends: where it takes no such lock it may finish, or fail, without waiting), then
 * `second` likewise, then lets them go, first come first served. Both may queue on the same statement: each is seen
 * waiting when one more runs than before it started. Answers both results and whether each was seen waiting.
 */
export async function queueAtRows<A, B>(
  databaseUrl: string,
  lockingRead: string,
  params: readonly unknown[],
  first: Contender<A>,
  second: Contender<B>,
): Promise<{ first: A; second: B; firstWaited: boolean; secondWaited: boolean }> {
  const holder = await rowHolder(databaseUrl);
  try {
    await holder.hold(lockingRead, params);
    const start = async <T>(contender: Contender<T>) => {
      const before = await holder.running(contender.waitsOn);
      let done = false;
      const running = contender.run().finally(() => {
        done = true;
      });
      // Handled where it is awaited; kept from counting as unhandled meanwhile.
      running.catch(() => {});
      let queued = false;
      for (let i = 0; i < 500 && !done && !queued; i++) {
        queued = (await holder.running(contender.waitsOn)) > before;
        if (!queued) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      if (!done && !queued) throw new Error(`nothing waits on ${contender.waitsOn}`);
      return { running, waited: queued };
    };
    const a = await start(first);
    const b = await start(second);
    await holder.release();
    return { first: await a.running, second: await b.running, firstWaited: a.waited, secondWaited: b.waited };
  } finally {
    await holder.end();
  }
}

/** queueAtRows at `userId`'s row. */
export const queueAtUserRow = <A, B>(databaseUrl: string, userId: string, first: Contender<A>, second: Contender<B>) =>
  queueAtRows(databaseUrl, 'SELECT id FROM users WHERE id = ? FOR UPDATE', [userId], first, second);
