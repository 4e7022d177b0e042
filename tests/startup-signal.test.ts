// SIGTERM during start-up (Docker stopping a container that is still migrating): the migrations are not cut in
// half (a half-applied MariaDB migration would stop every later start), the process finishes them, never
// serves, and exits 0; a second signal exits at once. The start is held in the migrations lock by the test
// (GET_LOCK on MariaDB, the exclusive transaction on SQLite's lock file), so the signal lands inside it.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type Dialect, databaseUrl, dialects } from './support/app.ts';
import { ed25519Pem } from './support/expect.ts';
import { eventually } from './support/subscriptions.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

function migrationNames(dialect: Dialect): string[] {
  return readdirSync(join(root, 'migrations', dialect))
    .filter((name) => name.startsWith('Migration') && name.endsWith('.ts'))
    .map((name) => name.replace(/\.ts$/, ''))
    .sort();
}

/** Holds the migrations lock the way another instance would; `applied` reads what the migrator recorded. */
async function holdLock(dialect: Dialect, url: string) {
  if (dialect === 'sqlite') {
    const path = url.slice('sqlite:'.length);
    const { DatabaseSync } = process.getBuiltinModule('node:sqlite');
    const lock = new DatabaseSync(`${path}.migrations-lock`);
    lock.exec('BEGIN EXCLUSIVE');
    return {
      /** The service has the lock file open: it is in its retry loop, waiting for us. */
      waiting: (child: ChildProcess) =>
        readdirSync(`/proc/${child.pid}/fd`).some((fd) => {
          try {
            return readlinkSync(`/proc/${child.pid}/fd/${fd}`).endsWith('.migrations-lock');
          } catch {
            return false;
          }
        }),
      release: async () => {
        lock.exec('ROLLBACK');
        lock.close();
      },
      applied: async () => {
        const db = new DatabaseSync(path, { readOnly: true });
        try {
          return (db.prepare('select name from mikro_orm_migrations').all() as { name: string }[])
            .map((row) => row.name.replace(/\.(ts|js)$/, ''))
            .sort();
        } finally {
          db.close();
        }
      },
    };
  }
  const { createConnection } = await import('mysql2/promise');
  const connection = await createConnection(url);
  const name = `auth-migrations:${new URL(url).pathname.slice(1)}`.slice(0, 64);
  await connection.query('SELECT GET_LOCK(?, 0)', [name]);
  return {
    waiting: async () => {
      const [rows] = await connection.query(
        "SELECT COUNT(*) AS n FROM information_schema.processlist WHERE info LIKE 'SELECT GET_LOCK(%'",
      );
      return Number((rows as { n: number }[])[0]?.n) > 0;
    },
    release: async () => {
      await connection.query('SELECT RELEASE_LOCK(?)', [name]);
    },
    applied: async () => {
      const [rows] = await connection.query('select name from mikro_orm_migrations');
      const names = (rows as { name: string }[]).map((row) => row.name.replace(/\.(ts|js)$/, '')).sort();
      await connection.end();
      return names;
    },
  };
}

function start(env: Record<string, string>, script = 'src/main.ts') {
  const child = spawn(join(root, 'node_modules/.bin/node'), [join(root, script)], {
    cwd: root,
    env: { PATH: process.env.PATH, NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  for (const stream of [child.stdout, child.stderr]) stream?.on('data', (chunk: Buffer) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, output: () => output };
}

describe.each(dialects())('a signal during start-up (%s)', (dialect) => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-start-signal-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const envFor = async (name: string) => ({
    DATABASE_URL: dialect === 'sqlite' ? `sqlite:${join(dir, `${name}.sqlite`)}` : await databaseUrl(dialect, dir),
    JWT_PRIVATE_KEY: ed25519Pem(),
    BCRYPT_COST: '4',
    DATA_DIR: dir,
    ISSUER: 'https://auth.test',
    AUDIENCE: 'https://api.test',
  });

  it('SIGTERM while migrating: the migrations all complete, nothing is served, exit 0', async () => {
    const env = await envFor('one');
    const lock = await holdLock(dialect, env.DATABASE_URL);
    const service = start(env);
    await eventually(() => lock.waiting(service.child), 20_000);
    service.child.kill('SIGTERM');
    // Released only after the signal: the migrations run after it arrived.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await lock.release();
    expect(await service.exited).toEqual({ code: 0, signal: null });
    expect(service.output()).not.toMatch(/listening|GraphiQL/);
    expect(await lock.applied()).toEqual(migrationNames(dialect));
  }, 40_000);

  it('a second signal during start-up exits at once with 128 + its number', async () => {
    const env = await envFor('two');
    const lock = await holdLock(dialect, env.DATABASE_URL);
    const service = start(env);
    await eventually(() => lock.waiting(service.child), 20_000);
    service.child.kill('SIGTERM');
    await eventually(() => service.output().includes('SIGTERM during start-up'), 5000);
    service.child.kill('SIGINT');
    expect(await service.exited).toEqual({ code: 130, signal: null });
    await lock.release();
    if (dialect === 'mysql') await lock.applied().catch(() => undefined);
  }, 40_000);

  it('SIGTERM during npm run migrate: the migrations all complete, exit 0', async () => {
    const env = await envFor('three');
    const lock = await holdLock(dialect, env.DATABASE_URL);
    const migrate = start(env, 'src/db/migrate-cli.ts');
    await eventually(() => lock.waiting(migrate.child), 20_000);
    migrate.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    await lock.release();
    expect(await migrate.exited).toEqual({ code: 0, signal: null });
    expect(await lock.applied()).toEqual(migrationNames(dialect));
  }, 40_000);
});
