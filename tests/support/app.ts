// Starts a whole app per test file on port 0, on SQLite or on the run's MariaDB.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { type App, type AppOptions, createApp } from '../../src/app.ts';
import { type Env, loadConfig } from '../../src/config.ts';
import { type Gql, graphqlClient } from './graphql.ts';
import { servicesRequired } from './services.ts';

export type Dialect = 'sqlite' | 'mysql';

/** The dialects this machine can test: SQLite always, MariaDB when the run started one. */
export function dialects(): Dialect[] {
  const url = inject('mariadbUrl');
  if (!url && servicesRequired) throw new Error('MariaDB is required (TEST_REQUIRE_SERVICES=1) but was not started');
  return url ? ['sqlite', 'mysql'] : ['sqlite'];
}

export async function databaseUrl(dialect: Dialect, dir: string): Promise<string> {
  if (dialect === 'sqlite') return `sqlite:${join(dir, 'auth.sqlite')}`;
  const server = inject('mariadbUrl');
  const name = `t_${randomBytes(6).toString('hex')}`;
  const { createConnection } = await import('mysql2/promise');
  const connection = await createConnection(`${server}/`);
  await connection.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  await connection.end();
  return `${server}/${name}`;
}

export interface TestApp {
  app: App;
  url: string;
  gql: Gql;
  dir: string;
  databaseUrl: string;
  close(): Promise<void>;
}

export interface TestAppOptions extends AppOptions {
  dialect?: Dialect;
  env?: Env;
  /** Reuse a database (e.g. to restart an app on the same data). */
  databaseUrl?: string;
}

export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const dir = mkdtempSync(join(tmpdir(), 'auth-test-'));
  const url = options.databaseUrl ?? (await databaseUrl(options.dialect ?? 'sqlite', dir));
  const config = loadConfig(
    {
      NODE_ENV: 'test',
      PORT: '0',
      HOST: '127.0.0.1',
      DATA_DIR: dir,
      DATABASE_URL: url,
      BCRYPT_COST: '4',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      ISSUER: 'https://auth.test',
      AUDIENCE: 'https://api.test',
      // Every test client calls from 127.0.0.1: tests of other things must not trip the throttles. The tests of
      // the limits themselves set their own (tests/rate-limits.test.ts).
      RATE_LIMIT_LOGIN_ACCOUNT: '1000/15m',
      RATE_LIMIT_LOGIN_IP: '100000/15m',
      RATE_LIMIT_REGISTER_IP: '100000/1h',
      RATE_LIMIT_REFRESH_SESSION: '1000/1m',
      RATE_LIMIT_CODE_ATTEMPTS: '1000/15m',
      RATE_LIMIT_MFA_ATTEMPTS: '1000/15m',
      RATE_LIMIT_OAUTH_START_IP: '100000/15m',
      RATE_LIMIT_PASSKEY_START_IP: '100000/15m',
      RATE_LIMIT_CLIENT_TOKEN: '100000/1m',
      RATE_LIMIT_CLIENT_TOKEN_IP: '100000/1m',
      // A fixed key, so that an app restarted on the same database still reads its TOTP secrets.
      MFA_ENCRYPTION_KEY: '6d66612d746573742d6b65792d6d66612d746573742d6b65792d6d66612d2d2d',
      ...options.env,
    },
    (path) => readFileSync(path, 'utf8'),
  );
  const app = await createApp(config, options);
  const base = await app.listen();
  return {
    app,
    url: base,
    gql: graphqlClient(base),
    dir,
    databaseUrl: url,
    async close() {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
