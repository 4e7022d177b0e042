// A production-shaped fleet for the fleet test and `npm run bench:fleet`: N real instances (`node src/main.ts`)
// sharing one MariaDB, one Redis and one signing key file, behind HAProxy; each part can be killed and restarted.
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  createDatabase,
  freePort,
  type LoadBalancer,
  type RunningService,
  startHaproxy,
  startMariaDb,
  startRedis,
} from './services.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
/** The project's own Node (package.json pins it), whatever `node` is first on PATH. */
const node = join(root, 'node_modules/.bin/node');
/** Kept of each instance's output, for diagnosing a failure. */
const OUTPUT_LIMIT = 64 * 1024;

export interface Instance {
  readonly port: number;
  /** http://127.0.0.1:<port>: the instance itself, bypassing the load balancer. */
  readonly url: string;
  /** The current process id (a new one after `start`), or undefined while it is down. */
  readonly pid: number | undefined;
  /** Starts the process (again, on the same port) and resolves once its /readyz answers 200. */
  start(): Promise<void>;
  /** Sends `signal` (SIGTERM by default) and resolves with the exit code once the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
  /** The tail of what the process wrote to stdout and stderr, across restarts. */
  output(): string;
}

export interface Fleet {
  readonly mariadb: RunningService;
  readonly redis: RunningService;
  readonly balancer: LoadBalancer;
  readonly instances: readonly Instance[];
  /** The load balancer's URL: the service's PUBLIC_URL. */
  readonly url: string;
  readonly databaseUrl: string;
  /** Resolves once HAProxy sees every running instance as UP (after a restart, before sending it traffic). */
  balanced(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface FleetOptions {
  readonly instances?: number;
  /** Added to every instance's environment (BCRYPT_COST, rate limits…). */
  readonly env?: Record<string, string>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function ready(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200;
  } catch {
    return false;
  }
}

function instance(port: number, env: Record<string, string>): Instance {
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let output = '';
  const record = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-OUTPUT_LIMIT);
  };
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  return {
    port,
    url,
    get pid() {
      return running() ? child?.pid : undefined;
    },
    output: () => output,
    async start() {
      if (running()) throw new Error(`instance ${port} is already running`);
      const spawned = spawn(node, [join(root, 'src/main.ts')], {
        cwd: root,
        env: { ...env, PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = spawned;
      spawned.stdout?.on('data', record);
      spawned.stderr?.on('data', record);
      const deadline = Date.now() + 60_000;
      while (!(await ready(url))) {
        if (spawned.exitCode !== null || spawned.signalCode !== null) {
          throw new Error(`instance ${port} exited (${spawned.signalCode ?? spawned.exitCode}):\n${output}`);
        }
        if (Date.now() > deadline) throw new Error(`instance ${port} not ready within 60 s:\n${output}`);
        await sleep(100);
      }
    },
    async kill(signal = 'SIGTERM') {
      const current = child;
      if (!current) return null;
      if (current.exitCode !== null || current.signalCode !== null) return current.exitCode;
      return new Promise((resolve) => {
        current.once('exit', (code) => resolve(code));
        current.kill(signal);
      });
    },
  };
}

/** Starts MariaDB, Redis, `count` instances (all at once, as a deployment would) and HAProxy in front of them. */
export async function startFleet(options: FleetOptions = {}): Promise<Fleet> {
  const count = options.instances ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'auth-fleet-'));
  const started: { stop(): Promise<void> }[] = [];
  try {
    const [mariadb, redis] = await Promise.all([startMariaDb(), startRedis()]);
    started.push(mariadb, redis);
    const databaseUrl = await createDatabase(mariadb, 'auth');
    // One key file shared by every instance, 0600 as a mounted secret would be.
    const keyFile = join(dir, 'signing-key.pem');
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const ports: number[] = [];
    // Distinct ports: freePort can hand the same one out twice when nothing has bound it in between.
    while (ports.length < count) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    let balancerPort = await freePort();
    while (ports.includes(balancerPort)) balancerPort = await freePort();
    const url = `http://127.0.0.1:${balancerPort}`;
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      DATA_DIR: dir,
      DATABASE_URL: databaseUrl,
      REDIS_URL: redis.url,
      JWT_PRIVATE_KEY_FILE: keyFile,
      PUBLIC_URL: url,
      ISSUER: 'https://auth.fleet.test',
      AUDIENCE: 'https://api.fleet.test',
      // HAProxy is the one proxy in front: the client address is the last X-Forwarded-For entry.
      TRUST_PROXY: '1',
      ...options.env,
    };
    const instances = ports.map((port) => instance(port, env));
    const stopInstances = { stop: async () => void (await Promise.all(instances.map((i) => i.kill('SIGKILL')))) };
    started.push(stopInstances);
    await Promise.all(instances.map((i) => i.start()));
    const balancer = await startHaproxy(ports, { port: balancerPort });
    started.push(balancer);
    const balanced = async (timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const states = await balancer.serverStates();
        const waiting = instances.filter((i) => i.pid !== undefined && states.get(i.port) !== 'UP');
        if (waiting.length === 0) return;
        if (Date.now() > deadline) {
          throw new Error(`HAProxy does not see ${waiting.map((i) => i.port).join(', ')} as UP: ${[...states]}`);
        }
        await sleep(100);
      }
    };
    await balanced();
    return {
      mariadb,
      redis,
      balancer,
      instances,
      url,
      databaseUrl,
      balanced,
      async stop() {
        for (const part of started.reverse()) await part.stop().catch(() => {});
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    for (const part of started.reverse()) await part.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** An instance process's resident set size in bytes (Linux), or undefined when it is not running. */
export function residentBytes(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** One GraphQL-over-HTTP exchange as a load generator sees it. */
export interface Exchange<T = Record<string, unknown>> {
  /** The HTTP status, or 0 when no response came (connection refused or reset). */
  readonly status: number;
  readonly data?: T | null;
  readonly errors?: { message: string; extensions?: { code?: string; reason?: string } }[];
  /** The instance HAProxy sent it to (x-served-by: i<port>), when it says. */
  readonly servedBy?: string;
  /** Why no GraphQL answer came: a transport error, or a response that was not JSON. */
  readonly failure?: string;
  readonly start: number;
  readonly end: number;
}

export type GraphqlPost = <T = Record<string, unknown>>(
  query: string,
  variables?: Record<string, unknown>,
  token?: string,
) => Promise<Exchange<T>>;

/**
 * A GraphQL POST client for many simulated users on few keep-alive sockets (node:http, so it sees every response
 * header and never throws: a failed exchange says why).
 */
export function graphqlPoster(baseUrl: string, agent: Agent): GraphqlPost {
  const target = new URL('/graphql', baseUrl);
  return (query, variables = {}, token) =>
    new Promise((resolve) => {
      const start = performance.now();
      const body = JSON.stringify({ query, variables });
      const done = (fields: Omit<Exchange, 'start' | 'end'>) =>
        resolve({ ...fields, start, end: performance.now() } as Exchange<never>);
      const send = (retry: boolean) => {
        const req = request(
          target,
          {
            method: 'POST',
            agent,
            headers: {
              'content-type': 'application/json',
              accept: 'application/graphql-response+json, application/json',
              'content-length': Buffer.byteLength(body),
              ...(token ? { authorization: `Bearer ${token}` } : {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('error', (error) => done({ status: res.statusCode ?? 0, failure: error.message }));
            res.on('end', () => {
              const status = res.statusCode ?? 0;
              const servedBy = typeof res.headers['x-served-by'] === 'string' ? res.headers['x-served-by'] : undefined;
              const text = Buffer.concat(chunks).toString();
              try {
                const parsed = JSON.parse(text) as Pick<Exchange, 'data' | 'errors'>;
                done({ status, servedBy, data: parsed.data, errors: parsed.errors });
              } catch {
                done({ status, servedBy, failure: `HTTP ${status} ${text.slice(0, 120)}` });
              }
            });
          },
        );
        req.on('error', (error: NodeJS.ErrnoException) => {
          // HAProxy closed this idle keep-alive socket as we reused it: the request never reached it, so send it
          // again on a new one (what Node's documentation prescribes for req.reusedSocket).
          if (retry && req.reusedSocket && (error.code === 'ECONNRESET' || error.message === 'socket hang up')) {
            send(false);
          } else done({ status: 0, failure: error.message });
        });
        req.end(body);
      };
      send(true);
    });
}
