// Throwaway Redis, MariaDB and HAProxy servers started from the system binaries, on free ports in temp dirs: for the
// tests (tests/support), the benchmarks (bench/) and migration generation (migrations/create.ts).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
  /**
   * Stops the process (to simulate an outage): SIGTERM, or `signal` (SIGKILL for a crash); `start` brings it back
   * on the same port and data.
   */
  kill?(signal?: NodeJS.Signals): Promise<void>;
  start?(): Promise<void>;
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      done();
    });
    child.kill(signal);
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
    kill: async (signal) => stopChild(child, signal),
    stop: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A Redis master with one replica, watched by three sentinels (quorum 2) that fail over within seconds. */
export interface RedisSentinelSet {
  /** REDIS_SENTINELS: host:port of each sentinel. */
  readonly sentinels: string;
  /** REDIS_SENTINEL_NAME. */
  readonly name: string;
  /** The master's port as the sentinels report it now. */
  masterPort(): Promise<number>;
  /** Kills the current master with SIGKILL (a crash); the sentinels then promote the replica. */
  killMaster(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedisSentinelSet(name = 'authmaster'): Promise<RedisSentinelSet> {
  const server = findBinary('redis-server');
  const sentinel = findBinary('redis-sentinel');
  if (!server || !sentinel) throw new Error('redis-server / redis-sentinel not found');
  const dir = mkdtempSync(join(tmpdir(), 'auth-sentinel-'));
  const children: ChildProcess[] = [];
  const byPort = new Map<number, ChildProcess>();
  const startServer = async (port: number, replicaOf?: number) => {
    const child = spawn(
      server,
      [
        ...['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        ...['--dir', mkdtempSync(join(dir, 'server-'))],
        ...(replicaOf ? ['--replicaof', '127.0.0.1', String(replicaOf)] : []),
      ],
      { stdio: 'ignore' },
    );
    children.push(child);
    byPort.set(port, child);
    await waitForPort(port, child, 'redis-server');
  };
  const [masterPort, replicaPort] = [await freePort(), await freePort()];
  await startServer(masterPort);
  await startServer(replicaPort, masterPort);
  const sentinelPorts = [await freePort(), await freePort(), await freePort()];
  await Promise.all(
    sentinelPorts.map(async (port) => {
      // A sentinel rewrites its configuration file as it learns the set-up: each gets its own.
      const config = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        config,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${name} 127.0.0.1 ${masterPort} 2`,
          `sentinel down-after-milliseconds ${name} 1000`,
          `sentinel failover-timeout ${name} 5000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      const child = spawn(sentinel, [config], { stdio: 'ignore' });
      children.push(child);
      await waitForPort(port, child, 'redis-sentinel');
    }),
  );
  const masterPortNow = async () => {
    const { Redis } = await import('ioredis');
    for (const port of sentinelPorts) {
      const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
      try {
        await client.connect();
        const reply = (await client.call('SENTINEL', 'get-master-addr-by-name', name)) as [string, string] | null;
        if (reply) return Number(reply[1]);
      } catch {
        // Ask the next sentinel.
      } finally {
        client.disconnect();
      }
    }
    throw new Error('no sentinel names a master');
  };
  return {
    sentinels: sentinelPorts.map((port) => `127.0.0.1:${port}`).join(','),
    name,
    masterPort: masterPortNow,
    killMaster: async () => {
      const child = byPort.get(await masterPortNow());
      if (child) await stopChild(child, 'SIGKILL');
    },
    stop: async () => {
      await Promise.all(children.map((child) => stopChild(child)));
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
  let child: ChildProcess;
  const start = async () => {
    child = spawn(
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
  };
  await start();
  return {
    get pid() {
      return child.pid as number;
    },
    port,
    url: `mysql://root@127.0.0.1:${port}`,
    start,
    kill: async (signal) => stopChild(child, signal),
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

export interface LoadBalancer extends RunningService {
  /** HAProxy's view of each backend server (`UP`, `DOWN`, `MAINT`…), by the backend's port. */
  serverStates(): Promise<Map<number, string>>;
}

/**
 * HAProxy (Debian's /usr/sbin/haproxy) on `port` (a free one by default), round-robin over `backends` (ports on 127.0.0.1), each
 * health-checked on GET /readyz. WebSockets and SSE pass through. Retries are limited to what cannot replay a
 * write: a connection that failed before the request left goes to another instance (any method), and only a GET
 * or HEAD is retried after an empty answer (a crash mid-request), since a POST may be a mutation that already ran.
 */
export async function startHaproxy(
  backends: readonly number[],
  options: { port?: number } = {},
): Promise<LoadBalancer> {
  const binary = findBinary('haproxy');
  if (!binary) throw new Error('haproxy not found');
  const dir = mkdtempSync(join(tmpdir(), 'auth-haproxy-'));
  const port = options.port ?? (await freePort());
  const socket = join(dir, 'admin.sock');
  const file = join(dir, 'haproxy.cfg');
  const config = [
    'global',
    '  maxconn 8000',
    `  stats socket ${socket} mode 600 level admin`,
    'defaults',
    '  mode http',
    '  maxconn 8000',
    '  option forwardfor',
    '  timeout connect 2s',
    '  timeout client 60s',
    // SSE streams are plain responses: Yoga sends a keep-alive comment every 12 s, well within this.
    '  timeout server 60s',
    // An upgraded WebSocket is a tunnel: it may stay quiet for long between pings.
    '  timeout tunnel 1h',
    '  timeout client-fin 5s',
    '  timeout http-keep-alive 10s',
    '  timeout queue 5s',
    '  retries 3',
    // Each retry picks another server, so a request never waits on the instance that just died.
    '  option redispatch 1',
    '  retry-on conn-failure empty-response',
    `frontend fleet`,
    `  bind 127.0.0.1:${port}`,
    '  default_backend instances',
    // Which instance answered (i<port>), so a test can tell whose outage a failed request belongs to.
    '  http-after-response set-header x-served-by %s',
    'backend instances',
    '  balance roundrobin',
    // A POST may have run (a login, a refresh rotation) before its instance died: never replay it.
    '  http-request disable-l7-retry unless METH_GET || METH_HEAD',
    '  option httpchk GET /readyz',
    '  http-check expect status 200',
    // A dead instance refuses the check at once: down within about a second (three failures 250 ms apart once
    // live traffic has seen a connection fail). A slow answer is not a dead instance: a loaded machine must not
    // time every check out at once and take the whole fleet out, hence the generous check timeout.
    '  timeout check 3s',
    '  default-server check inter 1s fastinter 250ms downinter 500ms fall 3 rise 1 observe layer4 error-limit 1 on-error fastinter',
    ...backends.map((backend) => `  server i${backend} 127.0.0.1:${backend}`),
    '',
  ].join('\n');
  writeFileSync(file, config);
  execFileSync(binary, ['-c', '-q', '-f', file], { stdio: 'pipe' });
  let child: ChildProcess;
  let output = '';
  const start = async () => {
    output = '';
    child = spawn(binary, ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    try {
      await waitForPort(port, child, 'haproxy');
    } catch (error) {
      throw new Error(`${(error as Error).message}: ${output}`);
    }
  };
  await start();
  const command = (line: string) =>
    new Promise<string>((resolveAnswer, reject) => {
      let answer = '';
      const connection = connect(socket, () => connection.end(`${line}\n`));
      connection.on('data', (chunk: Buffer) => {
        answer += chunk.toString();
      });
      connection.once('error', reject);
      connection.once('close', () => resolveAnswer(answer));
    });
  return {
    get pid() {
      return child.pid as number;
    },
    port,
    url: `http://127.0.0.1:${port}`,
    start,
    kill: async (signal) => stopChild(child, signal),
    stop: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
    async serverStates() {
      const [header, ...rows] = (await command('show stat')).trim().split('\n');
      const columns = (header ?? '').replace(/^# /, '').split(',');
      const [proxy, server, status] = ['pxname', 'svname', 'status'].map((name) => columns.indexOf(name));
      const states = new Map<number, string>();
      for (const row of rows) {
        const cells = row.split(',');
        const name = cells[server as number] ?? '';
        if (cells[proxy as number] !== 'instances' || !/^i\d+$/.test(name)) continue;
        states.set(Number(name.slice(1)), (cells[status as number] ?? '').split(' ')[0] as string);
      }
      return states;
    },
  };
}
