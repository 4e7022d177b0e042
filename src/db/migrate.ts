// Brings a database up to the latest migration of its dialect, under a lock, so that any number of instances
// started at once on an empty database (or `npm run migrate` beside them) apply each migration exactly once.
import type { DatabaseSync } from 'node:sqlite';
import { ensurePrivateFile } from '../private-files.ts';
import { BoundSqliteDriver } from './bound-parameters.ts';
import type { Orm } from './orm.ts';

/** How long an instance waits for another one's migrations before giving up (a first migration can be slow). */
const LOCK_TIMEOUT_MS = 120_000;
const SQLITE_RETRY_MS = 50;

type Release = () => Promise<void>;

/**
 * MySQL/MariaDB: GET_LOCK is held by one connection until it releases it or closes, so it lives on a connection
 * of its own (the migrator uses the pool). Its name is per database: tests and tenants share servers.
 */
async function lockMySql(orm: Orm): Promise<Release> {
  const { createConnection } = await import('mysql2/promise');
  const dbName = String(orm.config.get('dbName'));
  const connection = await createConnection({
    host: orm.config.get('host'),
    port: orm.config.get('port'),
    user: orm.config.get('user'),
    // Our configuration sets a string (orm.ts); MikroORM also allows a function.
    password: String(orm.config.get('password') ?? ''),
    connectTimeout: 10_000,
  });
  // GET_LOCK names are at most 64 characters.
  const name = `auth-migrations:${dbName}`.slice(0, 64);
  try {
    const [rows] = await connection.query('SELECT GET_LOCK(?, ?) AS locked', [name, LOCK_TIMEOUT_MS / 1000]);
    const locked = (rows as { locked: number | null }[])[0]?.locked;
    if (locked !== 1) {
      throw new Error(`migrations: another instance held the migrations lock for ${LOCK_TIMEOUT_MS / 1000} s`);
    }
  } catch (error) {
    await connection.end().catch(() => undefined);
    throw error;
  }
  return async () => {
    try {
      await connection.query('SELECT RELEASE_LOCK(?)', [name]);
    } finally {
      // Closing the connection releases the lock too, should the statement above have failed.
      await connection.end().catch(() => connection.destroy());
    }
  };
}

/**
 * SQLite: an exclusive transaction on a lock file beside the database. Not on the database itself: the
 * migrator's own connection must keep writing to it while the lock is held. Retried without blocking the event
 * loop (a busy timeout would block it, and a second app in the same process could then never release).
 */
async function lockSqlite(path: string): Promise<Release> {
  const lockPath = `${path}.migrations-lock`;
  ensurePrivateFile(lockPath);
  const { DatabaseSync: Database } = process.getBuiltinModule('node:sqlite');
  const db: DatabaseSync = new Database(lockPath, { timeout: 0 });
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      db.exec('BEGIN EXCLUSIVE');
      break;
    } catch (error) {
      const busy = /locked|busy/i.test((error as Error).message);
      if (!busy || Date.now() >= deadline) {
        db.close();
        throw busy
          ? new Error(`migrations: another instance held the migrations lock for ${LOCK_TIMEOUT_MS / 1000} s`)
          : error;
      }
      await new Promise((resolve) => setTimeout(resolve, SQLITE_RETRY_MS));
    }
  }
  return async () => {
    try {
      db.exec('ROLLBACK');
    } finally {
      db.close();
    }
  };
}

async function lock(orm: Orm): Promise<Release> {
  if (orm.config.getDriver() instanceof BoundSqliteDriver) {
    const path = String(orm.config.get('dbName'));
    return path === ':memory:' ? async () => undefined : lockSqlite(path);
  }
  return lockMySql(orm);
}

/** Applies pending migrations under the migrations lock; returns the names of those it ran. */
export async function migrate(orm: Orm): Promise<string[]> {
  const release = await lock(orm);
  try {
    // Read under the lock: an instance that waited finds what the lock holder applied, and nothing pending.
    const done = await orm.migrator.up();
    return done.map((m) => m.name);
  } finally {
    await release();
  }
}
