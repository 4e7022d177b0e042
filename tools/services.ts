// Throwaway Redis and MariaDB servers started from the system binaries, on free ports in temp dirs: for the
// tests (tests/support), the benchmarks (bench/) and migration generation (migrations/create.ts).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SEARCH_PATH = [
  ...(process.env.PATH ?? '').split(':'),
  '/usr/sbin',
  '/usr/bin',
  '/usr/local/bin',
  '/usr/local/sbin',
];

export function findBinary(name: string): string | undefined {
  for (const dir of SEARCH_PATH) {
    const candidate = join(dir, name);
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, label: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${label} exited with code ${child.exitCode}`);
    const open = await new Promise<boolean>((done) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        done(true);
      });
      socket.once('error', () => done(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${label} did not listen on ${port} within ${timeoutMs} ms`);
}

export interface RunningService {
  /** The server process (a new one after `start`). */
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
  /** Kills the process (to simulate an outage); `start` brings it back on the same port. */
  kill?(): Promise<void>;
  start?(): Promise<void>;
}

async function stopChild(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      done();
    });
    child.kill('SIGTERM');
  });
}

export async function startRedis(): Promise<RunningService> {
  const binary = findBinary('redis-server');
  if (!binary) throw new Error('redis-server not found');
  const dir = mkdtempSync(join(tmpdir(), 'auth-redis-'));
  const port = await freePort();
  let child: ChildProcess;
  const start = async () => {
    child = spawn(
      binary,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      {
        stdio: 'ignore',
      },
    );
    await waitForPort(port, child, 'redis-server');
  };
  await start();
  return {
    get pid() {
      return child.pid as number;
    },
    port,
    url: `redis://127.0.0.1:${port}`,
    start,
    kill: async () => stopChild(child),
    stop: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startMariaDb(): Promise<RunningService> {
  const daemon = findBinary('mariadbd') ?? findBinary('mysqld');
  const installer = findBinary('mariadb-install-db') ?? findBinary('mysql_install_db');
  if (!daemon || !installer) throw new Error('mariadbd / mariadb-install-db not found');
  const dir = mkdtempSync(join(tmpdir(), 'auth-mariadb-'));
  const data = join(dir, 'data');
  execFileSync(
    installer,
    ['--no-defaults', `--datadir=${data}`, '--user=root', '--auth-root-authentication-method=normal', '--skip-test-db'],
    { stdio: 'ignore' },
  );
  const port = await freePort();
  const child = spawn(
    daemon,
    [
      '--no-defaults',
      `--datadir=${data}`,
      '--user=root',
      `--socket=${join(dir, 'sock')}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      '--skip-name-resolve',
      '--innodb-flush-log-at-trx-commit=2',
      '--character-set-server=utf8mb4',
      '--collation-server=utf8mb4_unicode_ci',
    ],
    { stdio: 'ignore' },
  );
  await waitForPort(port, child, 'mariadbd', 60_000);
  return {
    pid: child.pid as number,
    port,
    url: `mysql://root@127.0.0.1:${port}`,
    stop: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Creates a fresh database on a running MariaDB and returns its URL. */
export async function createDatabase(server: RunningService, name: string): Promise<string> {
  const { createConnection } = await import('mysql2/promise');
  const connection = await createConnection({ host: '127.0.0.1', port: server.port, user: 'root' });
  await connection.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  await connection.end();
  return `${server.url}/${name}`;
}
