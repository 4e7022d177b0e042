// Several instances (and `npm run migrate`) started at once on one empty database all come up, and every
// migration is applied exactly once: the migrations run under a lock (GET_LOCK on MariaDB, an exclusive
// transaction on SQLite).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type Dialect, databaseUrl, dialects, startTestApp, type TestApp } from './support/app.ts';
import { ed25519Pem } from './support/expect.ts';
import { registerUser } from './support/graphql.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const INSTANCES = 6;

/** The migration files of a dialect, by name (what the migrator records). */
function migrationNames(dialect: Dialect): string[] {
  return readdirSync(join(root, 'migrations', dialect))
    .filter((name) => name.endsWith('.ts'))
    .map((name) => name.replace(/\.ts$/, ''))
    .sort();
}

/** The names recorded in the migrator's table, one row per application. */
async function appliedMigrations(dialect: Dialect, url: string): Promise<string[]> {
  if (dialect === 'sqlite') {
    const { DatabaseSync } = process.getBuiltinModule('node:sqlite');
    const db = new DatabaseSync(url.slice('sqlite:'.length), { readOnly: true });
    try {
      return (db.prepare('select name from mikro_orm_migrations').all() as { name: string }[])
        .map((row) => row.name.replace(/\.(ts|js)$/, ''))
        .sort();
    } finally {
      db.close();
    }
  }
  const { createConnection } = await import('mysql2/promise');
  const connection = await createConnection(url);
  try {
    const [rows] = await connection.query('select name from mikro_orm_migrations');
    return (rows as { name: string }[]).map((row) => row.name.replace(/\.(ts|js)$/, '')).sort();
  } finally {
    await connection.end();
  }
}

/** `npm run migrate` (src/db/migrate-cli.ts) as its own process; resolves to its exit code and output. */
function runMigrateCli(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(join(root, 'node_modules/.bin/node'), [join(root, 'src/db/migrate-cli.ts')], {
    cwd: root,
    env: { PATH: process.env.PATH, NODE_ENV: 'test', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output })));
}

describe.each(dialects())('%s: instances started at once on an empty database', (dialect) => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-migrate-lock-'));
  const started: TestApp[] = [];

  afterAll(async () => {
    await Promise.all(started.map((instance) => instance.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it(`all ${INSTANCES} instances and npm run migrate come up, each migration applied once`, async () => {
    const url = await databaseUrl(dialect, dir);
    // Apps in one process, each with its own ORM and connections, reach their migrations together (separate
    // processes spend their first seconds loading code, and would mostly start one after the other).
    const cli = runMigrateCli({ DATABASE_URL: url, DATA_DIR: dir, JWT_PRIVATE_KEY: ed25519Pem() });
    const outcomes = await Promise.allSettled(
      Array.from({ length: INSTANCES }, () => startTestApp({ databaseUrl: url })),
    );
    for (const outcome of outcomes) if (outcome.status === 'fulfilled') started.push(outcome.value);
    const failures = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [String(outcome.reason)] : []));
    expect(failures).toEqual([]);
    const migrated = await cli;
    expect([migrated.code, migrated.output]).toEqual([
      0,
      expect.stringMatching(/^(applied .+|database is up to date)\n$/),
    ]);

    expect(await appliedMigrations(dialect, url)).toEqual(migrationNames(dialect));
    // Every instance serves on the migrated schema.
    for (const instance of started) {
      const user = await registerUser(instance.gql);
      expect(user.user.id).toMatch(/./);
    }
  }, 120_000);
});
