// Bench child: the floor for `refresh`, a bare node:http server (no GraphQL, no ORM) that per request reads the
// session with its user by primary key, rotates it in one transaction (a conditional UPDATE and an audit INSERT)
// on a node:sqlite file with the service's settings (WAL, synchronous=NORMAL, busy_timeout), or with
// FLOOR_MYSQL_URL on MariaDB/MySQL through a mysql2 pool of prepared statements (the service's pool size), signs
// one EdDSA access token with jose and answers JSON shaped like the service's. Sessions are made over IPC.
// FLOOR_YOGA=1 serves the same rotation as the resolver of a bare graphql-yoga schema instead.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { DatabaseSync } from 'node:sqlite';
import { GraphQLError } from 'graphql';
import { createSchema, createYoga } from 'graphql-yoga';
import { importPKCS8, SignJWT } from 'jose';
import { listenUntilStopped } from './children.ts';

/** The question the parent asks over IPC; the answer is that many fresh refresh tokens, one session each. */
export interface SessionsRequest {
  readonly type: 'sessions';
  readonly count: number;
}

const ACCESS_TOKEN_SECONDS = 15 * 60;
const REFRESH_TOKEN_MS = 30 * 24 * 60 * 60 * 1000;

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const newSecret = () => randomBytes(32).toString('base64url');

type Value = string | number | null;

/** What the floor needs of its database. */
interface Store {
  read(sessionId: string): Promise<SessionRead | undefined>;
  /** The conditional UPDATE and, when it applied, the audit INSERT, in one transaction; whether it applied. */
  rotate(values: Value[], audit: Value[]): Promise<boolean>;
  makeSessions(count: number): Promise<string[]>;
  close(): Promise<void>;
}

interface SessionRead {
  readonly id: string;
  readonly refresh_token_hash: string;
  readonly refresh_generation: number;
  readonly expires_at: number;
  readonly revoked_at: number | null;
  readonly user_id: string;
  readonly roles: string;
}

function sqliteStore(path: string): Store {
  const db = new DatabaseSync(path);
  // The service's pragmas (src/db/orm.ts), and its three tables with the same columns and indexes.
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;');
  db.exec('PRAGMA foreign_keys = ON;');
  db.exec(`
  create table users (id text not null primary key, email text not null, password_hash text null,
    email_verified integer not null default false, display_name text null, roles text not null default 'USER',
    created_at datetime not null, updated_at datetime not null);
  create unique index users_email_unique on users (email);
  create table sessions (id text not null primary key, user_id text not null, refresh_token_hash text not null,
    refresh_generation integer not null default 0, refresh_tag_key text not null, rotated_at datetime null,
    created_at datetime not null, last_used_at datetime not null, expires_at datetime not null,
    max_expires_at datetime not null, user_agent text null, ip_address text null, revoked_at datetime null,
    revoked_reason text null, foreign key (user_id) references users (id) on delete cascade);
  create index sessions_user_id_index on sessions (user_id);
  create index sessions_revoked_at_index on sessions (revoked_at);
  create table audit_events (id integer not null primary key autoincrement, type text not null,
    user_id text null, session_id text null, ip_address text null, user_agent text null, detail text null,
    created_at datetime not null);
  create index audit_events_user_id_created_at_index on audit_events (user_id, created_at);
  create index audit_events_created_at_index on audit_events (created_at);
`);

  // Prepared once: the floor is the least a refresh can cost.
  const read = db.prepare(
    `select s.id, s.refresh_token_hash, s.refresh_generation, s.expires_at, s.revoked_at, u.id as user_id, u.roles
   from sessions s join users u on u.id = s.user_id where s.id = ?`,
  );
  const rotate = db.prepare(
    `update sessions set refresh_token_hash = ?, refresh_generation = ?, rotated_at = ?, last_used_at = ?,
   expires_at = ?, ip_address = ?, user_agent = ?
   where id = ? and refresh_generation = ? and refresh_token_hash = ? and revoked_reason is null`,
  );
  const audit = db.prepare(
    'insert into audit_events (type, user_id, session_id, ip_address, user_agent, detail, created_at) values (?, ?, ?, ?, ?, ?, ?)',
  );
  const insertUser = db.prepare('insert into users (id, email, created_at, updated_at) values (?, ?, ?, ?)');
  const insertSession = db.prepare(
    `insert into sessions (id, user_id, refresh_token_hash, refresh_tag_key, created_at, last_used_at, expires_at,
   max_expires_at) values (?, ?, ?, ?, ?, ?, ?, ?)`,
  );

  /** Runs `work` between BEGIN and COMMIT, rolling back if it throws. */
  function transaction<T>(work: () => T): T {
    db.exec('BEGIN');
    try {
      const result = work();
      db.exec('COMMIT');
      return result;
    } catch (error) {
      db.exec('ROLLBACK');
      throw error;
    }
  }

  /** Makes `count` users with one session each and returns their refresh tokens (`<session id>.<secret>`). */
  function makeSessions(count: number): string[] {
    const now = Date.now();
    return transaction(() =>
      Array.from({ length: count }, () => {
        const userId = randomUUID();
        const sessionId = randomUUID();
        const secret = newSecret();
        insertUser.run(userId, `floor-${userId}@example.com`, now, now);
        insertSession.run(
          sessionId,
          userId,
          sha256(secret),
          newSecret(),
          now,
          now,
          now + REFRESH_TOKEN_MS,
          now + 4 * REFRESH_TOKEN_MS,
        );
        return `${sessionId}.${secret}`;
      }),
    );
  }

  return {
    read: async (sessionId) => read.get(sessionId) as SessionRead | undefined,
    rotate: async (values, auditValues) =>
      transaction(() => {
        if (Number(rotate.run(...values).changes) !== 1) return false;
        audit.run(...auditValues);
        return true;
      }),
    makeSessions: async (count) => makeSessions(count),
    close: async () => db.close(),
  };
}

const READ_SQL = `select s.id, s.refresh_token_hash, s.refresh_generation, s.expires_at, s.revoked_at, u.id as user_id,
  u.roles from sessions s join users u on u.id = s.user_id where s.id = ?`;
const ROTATE_SQL = `update sessions set refresh_token_hash = ?, refresh_generation = ?, rotated_at = ?, last_used_at = ?,
  expires_at = ?, ip_address = ?, user_agent = ?
  where id = ? and refresh_generation = ? and refresh_token_hash = ? and revoked_reason is null`;
const AUDIT_SQL =
  'insert into audit_events (type, user_id, session_id, ip_address, user_agent, detail, created_at) values (?, ?, ?, ?, ?, ?, ?)';

/** The same tables on MariaDB/MySQL (datetimes as epoch milliseconds, as the SQLite floor keeps them). */
async function mysqlStore(url: string): Promise<Store> {
  const { createPool } = await import('mysql2/promise');
  const pool = createPool({ uri: url, connectionLimit: 10, maxPreparedStatements: 256 });
  for (const statement of [
    `create table users (id varchar(36) not null primary key, email varchar(254) not null unique,
      password_hash varchar(60) null, email_verified tinyint(1) not null default 0, display_name varchar(100) null,
      roles varchar(64) not null default 'USER', created_at bigint not null, updated_at bigint not null)`,
    `create table sessions (id varchar(36) not null primary key, user_id varchar(36) not null,
      refresh_token_hash varchar(64) not null, refresh_generation int unsigned not null default 0,
      refresh_tag_key varchar(43) not null, rotated_at bigint null, created_at bigint not null,
      last_used_at bigint not null, expires_at bigint not null, max_expires_at bigint not null,
      user_agent varchar(512) null, ip_address varchar(45) null, revoked_at bigint null, revoked_reason varchar(32) null,
      index sessions_revoked_at_index (revoked_at),
      foreign key (user_id) references users (id) on delete cascade)`,
    `create table audit_events (id int unsigned not null auto_increment primary key, type varchar(40) not null,
      user_id varchar(36) null, session_id varchar(36) null, ip_address varchar(45) null, user_agent varchar(512) null,
      detail text null, created_at bigint not null, index (user_id, created_at), index (created_at))`,
  ]) {
    await pool.query(statement);
  }
  return {
    async read(sessionId) {
      const [rows] = await pool.execute(READ_SQL, [sessionId]);
      const row = (rows as Record<string, unknown>[])[0];
      return (
        row &&
        ({
          ...row,
          expires_at: Number(row.expires_at),
          revoked_at: row.revoked_at === null ? null : Number(row.revoked_at),
        } as unknown as SessionRead)
      );
    },
    async rotate(values, audit) {
      const connection = await pool.getConnection();
      try {
        await connection.query('BEGIN');
        const [result] = await connection.execute(ROTATE_SQL, values);
        const applied = (result as { affectedRows: number }).affectedRows === 1;
        if (applied) await connection.execute(AUDIT_SQL, audit);
        await connection.query(applied ? 'COMMIT' : 'ROLLBACK');
        return applied;
      } catch (error) {
        await connection.query('ROLLBACK');
        throw error;
      } finally {
        connection.release();
      }
    },
    async makeSessions(count) {
      const now = Date.now();
      const tokens: string[] = [];
      for (let i = 0; i < count; i++) {
        const userId = randomUUID();
        const sessionId = randomUUID();
        const secret = newSecret();
        await pool.execute('insert into users (id, email, created_at, updated_at) values (?, ?, ?, ?)', [
          userId,
          `floor-${userId}@example.com`,
          now,
          now,
        ]);
        await pool.execute(
          `insert into sessions (id, user_id, refresh_token_hash, refresh_tag_key, created_at, last_used_at, expires_at,
           max_expires_at) values (?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            sessionId,
            userId,
            sha256(secret),
            newSecret(),
            now,
            now,
            now + REFRESH_TOKEN_MS,
            now + 4 * REFRESH_TOKEN_MS,
          ],
        );
        tokens.push(`${sessionId}.${secret}`);
      }
      return tokens;
    },
    close: () => pool.end(),
  };
}

const store: Store = process.env.FLOOR_MYSQL_URL
  ? await mysqlStore(process.env.FLOOR_MYSQL_URL)
  : sqliteStore(env('FLOOR_DATABASE'));

const key = await importPKCS8(env('JWT_PRIVATE_KEY'), 'EdDSA');
const issuer = env('ISSUER');
const audience = env('AUDIENCE');

/** What a rotation answers: the fields of the service's `RefreshPayload` the bench asks for. */
interface RefreshPayload {
  readonly accessToken: string;
  readonly refreshToken: string;
  readonly refreshTokenExpiresAt: string;
}

/** One rotation of `token` (`<session id>.<secret>`); undefined when it is not the session's current token. */
async function rotateToken(
  token: unknown,
  ip: string | null,
  userAgent: string | null,
): Promise<RefreshPayload | undefined> {
  const [sessionId, secret] = typeof token === 'string' ? token.split('.') : [];
  if (!sessionId || !secret) return undefined;
  const hash = sha256(secret);
  const session = await store.read(sessionId);
  const now = Date.now();
  if (!session || session.revoked_at !== null || session.expires_at <= now || session.refresh_token_hash !== hash) {
    return undefined;
  }
  const next = newSecret();
  const expiresAt = now + REFRESH_TOKEN_MS;
  const generation = session.refresh_generation;
  const rotated = await store.rotate(
    [sha256(next), generation + 1, now, now, expiresAt, ip, userAgent, sessionId, generation, hash],
    ['SESSION_REFRESHED', session.user_id, sessionId, ip, userAgent, null, now],
  );
  if (!rotated) return undefined;
  const accessToken = await new SignJWT({ sid: sessionId, roles: session.roles.split(',') })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' })
    .setIssuer(issuer)
    .setAudience(audience)
    .setSubject(session.user_id)
    .setJti(randomUUID())
    .setIssuedAt(Math.floor(now / 1000))
    .setExpirationTime(Math.floor(now / 1000) + ACCESS_TOKEN_SECONDS)
    .sign(key);
  return {
    accessToken,
    refreshToken: `${sessionId}.${next}`,
    refreshTokenExpiresAt: new Date(expiresAt).toISOString(),
  };
}

const INVALID = 'invalid refresh token';

/** The bare floor: the GraphQL request body read by hand, the answer written as the service would give it. */
function handle(request: IncomingMessage, response: ServerResponse): void {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const token = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { variables?: { t?: unknown } }).variables?.t;
    rotateToken(token, request.socket.remoteAddress ?? null, request.headers['user-agent'] ?? null).then(
      (refresh) => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify(refresh ? { data: { refresh } } : { errors: [{ message: INVALID }] }));
      },
      (error: unknown) => {
        response.writeHead(500, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ errors: [{ message: String(error) }] }));
      },
    );
  });
}

/**
 * FLOOR_YOGA=1: the same rotation as the resolver of a bare graphql-yoga schema (no plugins, no ORM), so the bench
 * can show how much of refresh's cost is GraphQL over HTTP, which every request through Yoga pays.
 */
function yogaHandler() {
  return createYoga<{ req: IncomingMessage }>({
    landingPage: false,
    graphiql: false,
    schema: createSchema<{ req: IncomingMessage }>({
      typeDefs: `type Query { ok: Boolean }
        type Mutation { refresh(refreshToken: String!): RefreshPayload! }
        type RefreshPayload { accessToken: String! refreshToken: String! refreshTokenExpiresAt: String! }`,
      resolvers: {
        Mutation: {
          refresh: async (_root, { refreshToken }: { refreshToken: string }, { req }) => {
            const userAgent = req.headers['user-agent'] ?? null;
            const payload = await rotateToken(refreshToken, req.socket.remoteAddress ?? null, userAgent);
            if (!payload) throw new GraphQLError(INVALID);
            return payload;
          },
        },
      },
    }),
  });
}

process.on('message', (message: Partial<SessionsRequest>) => {
  if (message?.type === 'sessions' && typeof message.count === 'number') {
    void store.makeSessions(message.count).then((tokens) => process.send?.(tokens));
  }
});

const server = createServer(process.env.FLOOR_YOGA === '1' ? yogaHandler() : handle);
await listenUntilStopped(server, () => store.close());
