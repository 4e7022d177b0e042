// MikroORM 7 drivers that send every value as a bound parameter. The stock connection renders each `?` as a quoted
// literal into the statement's text (Platform.formatQuery); a NUL there cuts a SQLite statement short, and any
// escaping bug would be an injection. Here the text keeps its placeholders and the values travel beside it.
import type { Configuration } from '@mikro-orm/core';
import { isRaw, JsonProperty, type Platform, Utils } from '@mikro-orm/core';
import { MariaDbDriver } from '@mikro-orm/mariadb';
import { MySqlConnection, MySqlDriver } from '@mikro-orm/mysql';
import { AbstractSqlDriver, BaseSqliteConnection, SqlitePlatform } from '@mikro-orm/sql';
import { CompiledQuery, MysqlDialect } from 'kysely';

export interface BoundQuery {
  readonly sql: string;
  readonly parameters: unknown[];
}

type Dialect = 'sqlite' | 'mysql';

/** One value as the driver binds it: what Platform.quoteValue would have written as a literal. */
function bindable(value: unknown, dialect: Dialect): unknown {
  if (value === undefined || value === null) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  // SQLite keeps datetimes as epoch milliseconds (SqlitePlatform.quoteValue); mysql2 writes a Date as a DATETIME
  // in the connection's time zone, as SqlString did.
  if (value instanceof Date) return dialect === 'sqlite' ? value.getTime() : value;
  if (Buffer.isBuffer(value)) return value;
  if (Utils.isPlainObject(value) || (value as { [JsonProperty]?: unknown })?.[JsonProperty]) {
    return JSON.stringify(value);
  }
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string') return value;
  return String(value);
}

/**
 * Rewrites MikroORM's `?`/`??` placeholder text and its parameters into text with `?` placeholders only and a
 * flat list of values, with the semantics of Platform.formatQuery: `??` is an identifier (our own names, quoted
 * into the text), `\?` a literal question mark, a raw fragment is spliced with its own parameters bound, and an
 * array becomes a list of placeholders (`in (?, ?)`).
 */
export function toBoundQuery(
  platform: Platform,
  dialect: Dialect,
  sql: string,
  params: readonly unknown[],
): BoundQuery {
  const parameters: unknown[] = [];
  const value = (param: unknown): string => {
    if (isRaw(param)) {
      const inner = toBoundQuery(platform, dialect, param.sql, param.params as unknown[]);
      parameters.push(...inner.parameters);
      return inner.sql;
    }
    if (Array.isArray(param) && !(param as { [JsonProperty]?: unknown })[JsonProperty]) {
      return param.map(value).join(', ');
    }
    parameters.push(bindable(param, dialect));
    return '?';
  };
  let out = '';
  let next = 0;
  let pos = 0;
  while (pos < sql.length) {
    const at = sql.indexOf('?', pos);
    if (at === -1) {
      out += sql.slice(pos);
      break;
    }
    if (at > 0 && sql[at - 1] === '\\') {
      // A literal `?` may not stay in bound text, where it would read as a placeholder.
      throw new Error('A literal question mark cannot be sent with bound parameters');
    }
    out += sql.slice(pos, at);
    if (sql[at + 1] === '?') {
      out += platform.quoteIdentifier(params[next++] as string);
      pos = at + 2;
    } else {
      out += value(params[next++]);
      pos = at + 1;
    }
  }
  return { sql: out, parameters };
}

interface ExecutingConnection {
  readonly platform: Platform;
  ensureConnection(): Promise<void>;
  prepareQuery(query: unknown, params?: unknown): { query: string; params: unknown[]; formatted: string };
  getSql(query: string, formatted: string, context?: unknown): string;
  executeQuery<T>(sql: string, run: () => Promise<T>, context?: unknown): Promise<T>;
  getClient(): { executeQuery(query: CompiledQuery): Promise<unknown> };
  transformRawResult(res: unknown, method: string): unknown;
}

// biome-ignore lint/suspicious/noExplicitAny: a mixin over MikroORM's connection classes, whose constructors vary.
type ConnectionClass = abstract new (...args: any[]) => object;

/** A connection class whose `execute` binds its values instead of formatting them into the text. */
function bindingConnection<TBase extends ConnectionClass>(Base: TBase, dialect: Dialect) {
  abstract class BindingConnection extends Base {
    async execute(query: unknown, params: unknown = [], method = 'all', ctx?: unknown, loggerContext?: unknown) {
      const self = this as unknown as ExecutingConnection;
      await self.ensureConnection();
      const q = self.prepareQuery(query, params);
      const bound = toBoundQuery(self.platform, dialect, q.query, q.params);
      const logged = self.getSql(q.query, q.formatted, loggerContext);
      const executor = (ctx as ReturnType<ExecutingConnection['getClient']> | undefined) ?? self.getClient();
      return self.executeQuery(
        logged,
        async () =>
          self.transformRawResult(await executor.executeQuery(CompiledQuery.raw(bound.sql, bound.parameters)), method),
        { ...q, ...(loggerContext as object | undefined) },
      );
    }

    // biome-ignore lint/correctness/useYield: refuses instead of streaming with inline values; nothing streams.
    async *stream(): AsyncIterableIterator<never> {
      throw new Error('Streaming is not supported with bound parameters');
    }
  }
  return BindingConnection;
}

const BoundSqliteConnection = bindingConnection(BaseSqliteConnection, 'sqlite');

/** SQLite through a Kysely dialect (`driverOptions`), every value bound. */
export class BoundSqliteDriver extends AbstractSqlDriver {
  constructor(config: Configuration) {
    super(config, new SqlitePlatform(), BoundSqliteConnection as never, ['kysely']);
  }
}

/** mysql2's `query(sql, values)` formats the values into the text on the client; `execute` binds them on the server. */
function serverSidePool(pool: import('mysql2').Pool) {
  type Callback = (error: unknown, result?: unknown) => void;
  const bind = (connection: import('mysql2').PoolConnection) =>
    new Proxy(connection, {
      get(target, property, receiver) {
        if (property === 'query') {
          return (sql: string, values: unknown[] | undefined, callback?: Callback) =>
            callback && values?.length
              ? target.execute(sql, values as never, callback as never)
              : target.query(sql, values as never, callback as never);
        }
        const member = Reflect.get(target, property, receiver);
        return typeof member === 'function' ? member.bind(target) : member;
      },
    });
  return {
    getConnection(callback: (error: unknown, connection?: unknown) => void) {
      pool.getConnection((error, connection) => callback(error, connection ? bind(connection) : connection));
    },
    end(callback: (error: unknown) => void) {
      pool.end(callback);
    },
  };
}

// Server-side prepared statements are kept per connection; the cap keeps 10 connections far below MySQL's
// max_prepared_stmt_count (16382 by default, for the whole server).
const PREPARED_STATEMENTS_PER_CONNECTION = 256;

class BoundMySqlConnection extends bindingConnection(MySqlConnection, 'mysql') {
  #pool: import('mysql2').Pool | undefined;

  override async createKyselyDialect(overrides: Record<string, unknown>) {
    const { createPool } = await import('mysql2');
    const options = (this as unknown as { mapOptions(o: unknown): Record<string, unknown> }).mapOptions(overrides);
    this.#pool = createPool({ ...options, maxPreparedStatements: PREPARED_STATEMENTS_PER_CONNECTION });
    return new MysqlDialect({ pool: serverSidePool(this.#pool) as never });
  }

  override async getNativeClient() {
    await this.ensureConnection();
    return this.requireNativeClient(this.#pool as never);
  }
}

/** MySQL, every value bound in a server-side prepared statement. */
export class BoundMySqlDriver extends MySqlDriver {
  constructor(config: Configuration) {
    super(config);
    (this as unknown as { connection: unknown }).connection = new BoundMySqlConnection(this.config as never);
  }
}

/** MariaDB, every value bound in a server-side prepared statement. */
export class BoundMariaDbDriver extends MariaDbDriver {
  constructor(config: Configuration) {
    super(config);
    (this as unknown as { connection: unknown }).connection = new BoundMySqlConnection(this.config as never);
  }
}
