// MikroORM set-up for both dialects: node:sqlite (embedded default) and MySQL/MariaDB.
import { dirname, resolve } from 'node:path';
import type { StatementSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { Migrator } from '@mikro-orm/migrations';
import { MikroORM, type SqlEntityManager } from '@mikro-orm/sql';
import { SqliteDialect } from 'kysely';
import type { DatabaseConfig } from '../config.ts';
import { ensurePrivateDir, ensurePrivateFile } from '../private-files.ts';
import { BoundMariaDbDriver, BoundMySqlDriver, BoundSqliteDriver } from './bound-parameters.ts';
import { entities } from './entities.ts';

export type Orm = MikroORM;
export type Em = SqlEntityManager;

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const migrationsPath = (dialect: DatabaseConfig['dialect']) => resolve(root, 'migrations', dialect);

/** A Kysely dialect over node:sqlite with the pragmas a server wants: WAL, a busy timeout, foreign keys. */
function nodeSqliteDialect(path: string) {
  return new SqliteDialect({
    database: () => {
      const { DatabaseSync } = process.getBuiltinModule('node:sqlite');
      const db = new DatabaseSync(path);
      db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;');
      db.exec('PRAGMA foreign_keys = ON;');
      // Every statement is parameterised (the ORM's too: bound-parameters.ts), so each text is prepared once;
      // constant ones as well (BEGIN and COMMIT run in every transaction).
      const prepared = new Map<string, StatementSync>();
      const prepare = (sql: string) => {
        let stmt = prepared.get(sql);
        if (!stmt) {
          if (prepared.size >= 200) prepared.clear();
          stmt = db.prepare(sql);
          prepared.set(sql, stmt);
        }
        return stmt;
      };
      return {
        prepare(sql: string) {
          const stmt = prepare(sql);
          return {
            reader: /^\s*(select|pragma|explain|with)/i.test(sql) || /\breturning\b/i.test(sql),
            all: (params: readonly unknown[]) => stmt.all(...(params as never[])),
            run: (params: readonly unknown[]) => stmt.run(...(params as never[])),
            get: (params: readonly unknown[]) => stmt.get(...(params as never[])),
            iterate: (params: readonly unknown[]) => stmt.iterate(...(params as never[])),
          };
        },
        close: () => db.close(),
      } as never;
    },
  });
}

type Options = NonNullable<Parameters<typeof MikroORM.init>[0]>;

export type ServerFlavor = 'mysql' | 'mariadb';

/** MariaDB reports column metadata differently from MySQL; its own driver keeps schema diffs exact. */
export async function detectFlavor(database: Extract<DatabaseConfig, { dialect: 'mysql' }>): Promise<ServerFlavor> {
  if (database.url.startsWith('mariadb://')) return 'mariadb';
  const { createConnection } = await import('mysql2/promise');
  const connection = await createConnection({
    host: database.host,
    port: database.port,
    user: database.user,
    password: database.password,
    connectTimeout: 10_000,
  });
  try {
    const [rows] = await connection.query('SELECT VERSION() AS version');
    return /mariadb/i.test(String((rows as { version: string }[])[0]?.version)) ? 'mariadb' : 'mysql';
  } finally {
    await connection.end();
  }
}

export function ormOptions(database: DatabaseConfig, flavor: ServerFlavor = 'mysql'): Options {
  const common = {
    entities,
    extensions: [Migrator],
    allowGlobalContext: false,
    forceUtcTimezone: true,
    debug: false,
    migrations: {
      path: migrationsPath(database.dialect),
      glob: '!(*.d).{js,ts}',
      emit: 'ts' as const,
      snapshot: false,
      silent: true,
    },
  };
  if (database.dialect === 'sqlite') {
    const path = database.path === ':memory:' ? database.path : resolve(database.path);
    if (path !== ':memory:') {
      ensurePrivateDir(dirname(path));
      ensurePrivateFile(path);
    }
    return {
      ...common,
      driver: BoundSqliteDriver,
      dbName: path,
      driverOptions: nodeSqliteDialect(path),
    } as unknown as Options;
  }
  return {
    ...common,
    driver: flavor === 'mariadb' ? BoundMariaDbDriver : BoundMySqlDriver,
    host: database.host,
    port: database.port,
    user: database.user,
    password: database.password,
    dbName: database.dbName,
    timezone: '+00:00',
    discovery: {
      // Emails are stored normalised; compare them byte for byte, not under an accent-blind collation
      // (utf8mb4_unicode_ci would make jose@ and josé@ one account). SQLite compares bytes already.
      // Likewise provider user ids: an OIDC `sub` is case-sensitive, and "abc" must not find "ABC"'s link.
      onMetadata: (meta: { className: string; properties: Record<string, { collation?: string }> }) => {
        const exact =
          meta.className === 'User'
            ? [meta.properties.email]
            : meta.className === 'LinkedAccount'
              ? [meta.properties.provider, meta.properties.providerUserId]
              : [];
        for (const property of exact) if (property) property.collation = 'utf8mb4_bin';
      },
    },
    pool: { min: 1, max: 10 },
  } as unknown as Options;
}

export async function createOrm(database: DatabaseConfig): Promise<Orm> {
  const flavor = database.dialect === 'mysql' ? await detectFlavor(database) : undefined;
  return (await MikroORM.init(ormOptions(database, flavor))) as Orm;
}
