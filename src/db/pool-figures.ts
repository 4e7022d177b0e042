// The database pool's figures for /metrics: mysql2 keeps them on its pool (MikroORM hands the pool out through
// getNativeClient); SQLite has one connection and no pool.
import type { Orm } from './orm.ts';

export interface PoolFigures {
  /** Connections open now, idle or in use. */
  readonly open: number;
  readonly idle: number;
  /** Requests waiting for a connection. */
  readonly waiting: number;
  /** The most connections the pool opens. */
  readonly max: number;
}

interface Mysql2Pool {
  _allConnections?: { length: number };
  _freeConnections?: { length: number };
  _connectionQueue?: { length: number };
  config?: { connectionLimit?: number };
}

/** A reader of the pool's figures, or undefined when the database has no pool (SQLite). */
export async function poolFigures(
  orm: Orm,
  dialect: 'sqlite' | 'mysql',
): Promise<(() => PoolFigures | undefined) | undefined> {
  const connection = orm.em.getConnection() as unknown as { getNativeClient?: () => Promise<unknown> };
  if (dialect !== 'mysql' || typeof connection.getNativeClient !== 'function') return undefined;
  const pool = (await connection.getNativeClient()) as Mysql2Pool;
  // mysql2 has no public statistics; these are the queues it keeps, read defensively.
  const size = (queue: { length: number } | undefined) => (typeof queue?.length === 'number' ? queue.length : 0);
  return () =>
    pool._allConnections === undefined
      ? undefined
      : {
          open: size(pool._allConnections),
          idle: size(pool._freeConnections),
          waiting: size(pool._connectionQueue),
          max: pool.config?.connectionLimit ?? 0,
        };
}
