// A start that cannot reach its database or Redis names the variable and the cause, never a credential; a
// production start warns about what it allows but an operator should look at twice. Real processes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { ed25519Pem } from './support/expect.ts';
import { runServiceUntilExit, startServiceProcess } from './support/processes.ts';
import { freePort, serviceAvailable } from './support/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'auth-startup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = 'hunter2-Zq9';

/** The one line the process printed on stderr, after checking it failed with code 1 and printed nothing else. */
async function failedStart(env: Record<string, string>): Promise<string> {
  const exited = await runServiceUntilExit({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATA_DIR: dir, ...env });
  expect(exited.code).toBe(1);
  expect(exited.stdout).toBe('');
  expect(exited.stderr).not.toContain(SECRET);
  const lines = exited.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  return lines[0] as string;
}

describe('a start that cannot connect', () => {
  it('names DATABASE_URL and the cause when nothing listens, without the password', async () => {
    const port = await freePort();
    const line = await failedStart({ DATABASE_URL: `mysql://auth:${SECRET}@127.0.0.1:${port}/auth` });
    expect(line).toMatch(/^cannot start: DATABASE_URL: cannot connect: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
  });

  it('names DATABASE_URL when the server refuses the credentials, without the password', async () => {
    const server = inject('mariadbUrl');
    if (!server) return void expect(serviceAvailable('mariadbd')).toBe(false);
    const { host } = new URL(server);
    const line = await failedStart({ DATABASE_URL: `mysql://nobody:${SECRET}@${host}/auth` });
    expect(line).toMatch(
      /^cannot start: DATABASE_URL: cannot connect: ER_ACCESS_DENIED_ERROR: Access denied for user 'nobody'@'[^']+' \(using password: YES\)$/,
    );
  });

  it('names REDIS_URL and the cause when nothing listens, without the password', async () => {
    const port = await freePort();
    const line = await failedStart({
      DATABASE_URL: `sqlite:${join(dir, 'redis-down.sqlite')}`,
      REDIS_URL: `redis://:${SECRET}@127.0.0.1:${port}`,
    });
    expect(line).toMatch(/^cannot start: REDIS_URL: cannot connect: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
  });
});

describe('a production start', () => {
  it('warns once per finding, one JSON line each naming the variable, and serves', async () => {
    const service = await startServiceProcess({
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      DATA_DIR: dir,
      DATABASE_URL: `sqlite:${join(dir, 'production.sqlite')}`,
      JWT_PRIVATE_KEY: ed25519Pem(),
      MFA_ENCRYPTION_KEY: Buffer.alloc(32, 1).toString('base64'),
      SMTP_URL: 'smtp://127.0.0.1:2525',
      MAIL_FROM: 'no-reply@example.com',
      CORS_ORIGINS: 'https://app.example.com,app.example.com',
      GRAPHIQL: 'true',
    });
    try {
      const warningsLogged = () =>
        service
          .output()
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line) as { level: number; msg: string; variable?: string })
          .filter((entry) => entry.variable !== undefined);
      // pino writes asynchronously: the lines may follow the GraphiQL line.
      const warnings = await vi.waitFor(() => {
        const found = warningsLogged();
        if (found.length < 5) throw new Error('waiting for the warnings');
        return found;
      });
      expect(warnings.map((entry) => [entry.level, entry.variable, entry.msg])).toEqual([
        [
          40,
          'DATABASE_URL',
          'DATABASE_URL: SQLite in production serves one instance only; use mysql://… to run several',
        ],
        [
          40,
          'ISSUER',
          'ISSUER: http://localhost:0 is on localhost; tokens name it as their issuer (set PUBLIC_URL or ISSUER)',
        ],
        [
          40,
          'AUDIENCE',
          'AUDIENCE: http://localhost:0 is on localhost; resource servers check it (set PUBLIC_URL or AUDIENCE)',
        ],
        [
          40,
          'CORS_ORIGINS',
          'CORS_ORIGINS: "app.example.com" has no scheme and matches no browser origin (write https://app.example.com)',
        ],
        [40, 'METRICS_TOKEN', 'METRICS_TOKEN: unset, so GET /metrics answers anyone who can reach the port'],
      ]);
      expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
    } finally {
      await service.stop();
    }
  });
});

describe('a development start', () => {
  it('logs readable lines through pino-pretty rather than JSON', async () => {
    const service = await startServiceProcess({
      NODE_ENV: 'development',
      LOG_LEVEL: 'info',
      DATA_DIR: join(dir, 'development'),
    });
    try {
      const listening = await vi.waitFor(() => {
        const line = service
          .output()
          .split('\n')
          .find((text) => / INFO \(\d+\): listening$/.test(text));
        if (!line) throw new Error('waiting for the listening line');
        return line;
      });
      expect(listening).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO \(\d+\): listening$/);
      expect(service.output()).not.toMatch(/^\{"level"/m);
    } finally {
      // What this test checks is the log format; shutdown has its own tests (tests/shutdown.test.ts). A
      // development process spawned from the test worker sometimes does not act on a SIGTERM sent right after
      // start (about one run in three here, never outside vitest; cause not found yet), so it is killed.
      if (service.child.exitCode === null && service.child.signalCode === null) {
        const exited = new Promise((resolve) => service.child.once('exit', resolve));
        service.child.kill('SIGKILL');
        await exited;
      }
    }
  });
});
