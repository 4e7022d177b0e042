// npm run bench: loads the service, a bare Yoga + jose floor, a bare SQLite + jose refresh floor (and its rotation
// as a bare Yoga resolver), node:http answering a fixed body (the machine's own latency tail) and raw bcrypt in one
// run, plus `me` and `refresh` spread over 10,000 accounts, and prints one table, with requestPasswordReset's
// answer time for addresses with and without an account under it; the same rows on a throwaway mariadbd (the
// service, its spread instance and the refresh floors on MariaDB; BENCH_MARIADB=0 skips them) in a second table;
// then revocation latency over graphql-ws (same instance and across two sharing Redis) and memory per idle
// subscription; then the verifier package's rows (bench/revocation.ts): revocation → refusal and verify()
// throughput against jose.
// BENCH_ONLY=revocation,verify (either or both) runs only those rows, on processes of their own.
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase, findBinary, startMariaDb } from '../tools/services.ts';
import type { BcryptResult } from './bcrypt.ts';
import { startChild } from './children.ts';
import { meterOtherCpu, meterProcess, meterThreads } from './cpu.ts';
import { combine, gql, type LoadResult, measure, type Scenario } from './load.ts';
import { benchRealtime, printRealtime, type RealtimeResults, type Stoppable } from './realtime.ts';
import type { SessionsRequest } from './refresh-floor.ts';
import { measureResetAnswers, printResetAnswers } from './reset.ts';
import { benchVerifierPackage, printVerifierPackage, VERIFIER_SECTIONS } from './revocation.ts';
import type { BenchClient } from './service.ts';
import {
  hotRefreshScenario,
  registerAccounts,
  spreadReadScenario,
  spreadRefreshScenario,
  type Tokens,
} from './spread.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const WARMUP_SECONDS = 2;
const CONNECTIONS = 50;
/** bcrypt runs on libuv's pool (4 threads by default): twice that in flight keeps it busy without a long queue. */
const BCRYPT_IN_FLIGHT = 8;
const BCRYPT_COST = 10;
const PASSWORD = 'correct horse battery';
/** Above this share of the CPUs used by other processes during a row, its verdict is marked skewed. */
const SKEWED_OTHER_CPU = 0.1;
/**
 * A row and its floors are measured side by side in this many alternating slices of SECONDS / SLICES each, so that
 * the machine's drift over a run (a noisy neighbour, CPU boost) falls on all of them alike: one after the other, two
 * identical floors differed by up to 20% in one run.
 */
const SLICES = 4;
/**
 * Each refresh run strands one token per connection (its response arrives after the run stops): a warm-up and
 * SLICES slices, plus spares.
 */
const SESSIONS = (SLICES + 1) * CONNECTIONS + 50;
/** The spread rows: this many distinct accounts, each with its own session, on a second instance of the service. */
const SPREAD_ACCOUNTS = 10_000;
/**
 * The spread instance hashes passwords at the lowest cost, so that signing its accounts up through the API costs
 * little more than register's own work (about 40 s for 10,000 on 2 CPUs).
 */
const SPREAD_BCRYPT_COST = 4;
const SPREAD_IN_FLIGHT = 32;
/** A spread row meets the issue's bar when its p99 is within this many times the single-user row's p50. */
const SPREAD_P99_OVER_P50 = 2;
/**
 * The spread `me` row's warm-up: long enough for one request per account (about 1,500/s here), so that the row
 * measures active users, whose rows an instance has cached, rather than each account's first request.
 */
const SPREAD_WARMUP_SECONDS = 8;
/** requestPasswordReset's answer time: this many known addresses (spread accounts, each asked once) and unknown. */
const RESET_SAMPLES = 500;

// The token path: `me` answered from the verified claims, as DESIGN.md's hot path says (the target row).
const ME_QUERY = '{ me { id roles } }';
const ME = JSON.stringify({ query: ME_QUERY });
// `me` with a field only the users row has: one database read per request (shown beside the same floor).
const ME_READ_QUERY = '{ me { id email } }';
const ME_READ = JSON.stringify({ query: ME_READ_QUERY });
const LOGIN =
  'mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken refreshTokenExpiresAt } }';

const log = (message: string) => process.stderr.write(`bench: ${message}\n`);

interface Measured extends Pick<LoadResult, 'rps' | 'p50' | 'p99'> {
  readonly errors?: number;
  /** Share of the machine's CPU used by other processes meanwhile. */
  readonly otherCpu: number | undefined;
  /** With `threadsOf`: the CPU time (ms) per request each group of that process's threads used. */
  readonly cpuPerRequest?: Record<string, number>;
  /** With `alsoOf`: the CPU time (ms) per request that process (a database server) used, all threads together. */
  readonly alsoCpuPerRequest?: { readonly name: string; readonly ms: number };
}

async function warmAndMeasure(
  name: string,
  url: string,
  scenario: Scenario,
  warmupSeconds = WARMUP_SECONDS,
  threadsOf?: number,
  alsoOf?: { readonly name: string; readonly pid: number },
): Promise<LoadResult & Measured> {
  log(`${name}: ${warmupSeconds} s warm-up, then ${SECONDS} s with ${scenario.connections} connections`);
  await measure(url, scenario, warmupSeconds);
  const otherCpu = meterOtherCpu(ownPids);
  const threads = threadsOf === undefined ? undefined : meterThreads(threadsOf);
  const also = alsoOf && meterProcess(alsoOf.pid);
  const result = await measure(url, scenario, SECONDS);
  const used = threads?.();
  const alsoUsed = also?.();
  const requests = result.rps * SECONDS;
  return {
    ...result,
    otherCpu: otherCpu(),
    ...(used && requests > 0
      ? { cpuPerRequest: Object.fromEntries([...used].map(([group, ms]) => [group, ms / requests])) }
      : {}),
    ...(alsoOf && alsoUsed !== undefined && requests > 0
      ? { alsoCpuPerRequest: { name: alsoOf.name, ms: alsoUsed / requests } }
      : {}),
  };
}

/** One row of a side-by-side measurement: what it is called in the log, where it is served, and its load. */
interface SideBySide {
  readonly name: string;
  readonly url: string;
  readonly scenario: Scenario;
}

/**
 * Measures `rows` side by side: each warmed up for `warmupSeconds` in turn, then SLICES rounds in which each runs
 * SECONDS / SLICES s. Each row's result adds up its slices (rate over their total time, percentiles over all their
 * responses); other CPU is metered over the whole block, for every row alike.
 */
async function measureSideBySide<const Rows extends readonly SideBySide[]>(
  rows: Rows,
  warmupSeconds = WARMUP_SECONDS,
): Promise<{ [K in keyof Rows]: LoadResult & Measured }> {
  log(
    `${rows.map((row) => row.name).join(' | ')}: ${warmupSeconds} s warm-up each, then ${SECONDS} s each in ` +
      `${SLICES} alternating slices with ${rows[0]?.scenario.connections} connections`,
  );
  for (const { url, scenario } of rows) await measure(url, scenario, warmupSeconds);
  const otherCpu = meterOtherCpu(ownPids);
  const slices = rows.map((): LoadResult[] => []);
  for (let slice = 0; slice < SLICES; slice++) {
    for (const [i, { url, scenario }] of rows.entries())
      slices[i]?.push(await measure(url, scenario, SECONDS / SLICES));
  }
  const other = otherCpu();
  return slices.map((runs) => ({ ...combine(runs), otherCpu: other })) as { [K in keyof Rows]: LoadResult & Measured };
}

/** Where refresh is served, and the refresh tokens it hands out there (one pool, spent and refilled as it runs). */
interface RefreshTarget {
  readonly url: string;
  readonly tokens: string[];
}

/** Refresh on the service, its floor and the floor through bare Yoga, side by side; `label` prefixes the log. */
function measureRefreshes(label: string, service: RefreshTarget, floor: RefreshTarget, yogaFloor: RefreshTarget) {
  const row = (name: string, { url, tokens }: RefreshTarget) => ({
    name: `${label}${name}`,
    url,
    scenario: hotRefreshScenario(tokens, CONNECTIONS),
  });
  return measureSideBySide([
    row('refresh', service),
    row('refresh on its floor', floor),
    row('refresh on its floor through bare Yoga', yogaFloor),
  ]);
}

/**
 * Where a sign-in's CPU went, beside raw bcrypt's per compare: login can reach raw bcrypt's rate only as far as the
 * service's other threads leave bcrypt's pool the CPUs.
 */
function printCpuSplit(label: string, login: Measured, raw: Record<string, number>): void {
  const split = (cpu: Record<string, number>) =>
    Object.entries(cpu)
      .filter(([, ms]) => ms >= 0.05)
      .sort(([, a], [, b]) => b - a)
      .map(([group, ms]) => `${group} ${ms.toFixed(1)}`)
      .join(', ');
  if (!login.cpuPerRequest) return;
  const total = (cpu: Record<string, number>) => Object.values(cpu).reduce((sum, ms) => sum + ms, 0);
  const also = login.alsoCpuPerRequest;
  console.log(
    `${label}CPU ms per login in the service: ${split(login.cpuPerRequest)} (${total(login.cpuPerRequest).toFixed(1)} ` +
      `in all)${also ? `, and ${also.ms.toFixed(1)} in ${also.name}, on the same CPUs` : ''}; raw bcrypt per ` +
      `compare: ${split(raw)} (${total(raw).toFixed(1)} in all).`,
  );
}

/**
 * The tail of the rows at one user or session, floors included, as p99 ÷ p50: the spread bar (a spread row's p99
 * within SPREAD_P99_OVER_P50 × its single-user row's p50) read against what a bare server shows at this load, and
 * against what the machine shows: node:http answering a fixed body (bench/fixed-answer.ts).
 */
function printTails(rows: [string, Measured][]): void {
  console.log(
    `p99 ÷ p50 at one user or session, the machine's own first (the spread bar allows ${SPREAD_P99_OVER_P50} against ` +
      'the single-user p50): ' +
      `${rows.map(([name, result]) => `${name} ${(result.p99 / result.p50).toFixed(1)}`).join(', ')}.`,
  );
}

interface Row {
  operation: string;
  result: Measured;
  reference?: { name: string; result: Measured };
  target?: { text: string; met: boolean };
}

const count = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (n < 10 ? n.toFixed(1) : count(n));

/** Whether other processes took enough CPU during a row (or its reference) to make its verdict doubtful. */
const skewed = (...results: (Measured | undefined)[]) => results.some((r) => (r?.otherCpu ?? 0) > SKEWED_OTHER_CPU);

/** A spread row beside its single-user row: its rate as a ratio, and whether its p99 is within the bar. */
function spreadRow(operation: string, result: Measured, single: Measured): Row {
  const bar = SPREAD_P99_OVER_P50 * single.p50;
  return {
    operation,
    result,
    reference: { name: 'one user', result: single },
    target: { text: `p99 ≤ ${SPREAD_P99_OVER_P50} × its p50 (${ms(bar)} ms)`, met: result.p99 <= bar },
  };
}

/**
 * Refresh beside the refresh floor's own rotation served as a bare Yoga resolver: the share of refresh's floor
 * that is left once GraphQL over HTTP is paid, which is what the service's own code (rules, ORM, plugins) can move.
 * For reading only, with no target of its own.
 */
function yogaShareRow(result: Measured, yogaFloor: Measured): Row {
  return {
    operation: 'refresh, beside its floor through Yoga',
    result,
    reference: { name: 'Yoga floor', result: yogaFloor },
  };
}

function printTable(rows: Row[]): void {
  const header = ['operation', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'other CPU', 'reference', 'ratio', 'target'];
  const cells = rows.map(({ operation, result, reference, target }) => [
    operation,
    count(result.rps),
    ms(result.p50),
    ms(result.p99),
    result.errors === undefined ? '' : count(result.errors),
    result.otherCpu === undefined ? '?' : `${(100 * result.otherCpu).toFixed(0)}%`,
    reference ? `${reference.name} ${count(reference.result.rps)}/s` : '',
    reference ? `${((100 * result.rps) / reference.result.rps).toFixed(0)}%` : '',
    target
      ? `${target.text}: ${target.met ? 'met' : 'NOT met'}${skewed(result, reference?.result) ? ' (skewed)' : ''}`
      : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) => `| ${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  console.log([line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n'));
}

const dir = mkdtempSync(join(tmpdir(), 'auth-bench-'));
/** Every process the bench started (services, floor, Redis): stopped at the end or on an interrupt. */
const children: Stoppable[] = [];
const track = <T extends Stoppable>(child: T) => {
  children.push(child);
  return child;
};
const started = <T extends Stoppable>(child: Promise<T>) => child.then(track);
const stopped = async (child: Stoppable) => {
  const index = children.indexOf(child);
  if (index >= 0) children.splice(index, 1);
  await child.stop();
};
const ownPids = () => [process.pid, ...children.map((child) => child.pid)];
const cleanUp = async () => {
  await Promise.all(children.splice(0).map((child) => child.stop()));
  rmSync(dir, { recursive: true, force: true });
};
process.once('SIGINT', () => void cleanUp().finally(() => process.exit(130)));
const only = process.env.BENCH_ONLY?.split(',')
  .map((name) => name.trim())
  .filter((name) => name.length > 0);
if (only?.length) {
  let code = 0;
  try {
    const unknown = only.filter((name) => !VERIFIER_SECTIONS.includes(name));
    if (unknown.length > 0) throw new Error(`BENCH_ONLY: no section ${unknown} (known: ${VERIFIER_SECTIONS})`);
    const { privateKey } = generateKeyPairSync('ed25519');
    const results = await benchVerifierPackage({
      dir,
      env: { ...process.env, ISSUER: 'https://auth.bench', AUDIENCE: 'https://api.bench' },
      jwtPrivateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      sections: new Set(only),
      track,
      ownPids,
      log,
    });
    console.log(`Node ${process.version}, ${availableParallelism()} CPUs (${cpus()[0]?.model ?? 'unknown CPU'})`);
    printVerifierPackage(results);
    if (results.failed) code = 1;
  } catch (error) {
    console.error(error);
    code = 1;
  } finally {
    await cleanUp();
  }
  // The whole bench below is not for this run (stdout to a file or pipe is written synchronously on Linux).
  process.exit(code);
}
let exitCode = 0;
try {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const common = { ...process.env, ISSUER: 'https://auth.bench', AUDIENCE: 'https://api.bench' };
  const serviceEnv = {
    ...common,
    DATA_DIR: dir,
    DATABASE_URL: `sqlite:${join(dir, 'bench.sqlite')}`,
    BCRYPT_COST: String(BCRYPT_COST),
    LOG_LEVEL: 'silent',
    PORT: '0',
    HOST: '127.0.0.1',
    JWT_ALG: 'EdDSA',
    JWT_PRIVATE_KEY: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    // The throttles stay on, since their bookkeeping is part of each request's cost, but far above what one run reaches.
    RATE_LIMIT_REGISTER_IP: '1000000/1h',
    RATE_LIMIT_REFRESH_SESSION: '1000000/1m',
    RATE_LIMIT_LOGIN_ACCOUNT: '1000000/15m',
    RATE_LIMIT_LOGIN_IP: '1000000/15m',
    RATE_LIMIT_CLIENT_TOKEN: '1000000/1m',
    RATE_LIMIT_CLIENT_TOKEN_IP: '1000000/1m',
  };
  const floorEnv = { ...common, FLOOR_PUBLIC_KEY: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
  const refreshFloorEnv = {
    ...common,
    FLOOR_DATABASE: join(dir, 'refresh-floor.sqlite'),
    JWT_PRIVATE_KEY: serviceEnv.JWT_PRIVATE_KEY,
  };
  // The same rotation as a bare Yoga resolver: what GraphQL over HTTP alone costs a refresh (not a target's floor).
  const yogaRefreshFloorEnv = {
    ...refreshFloorEnv,
    FLOOR_DATABASE: join(dir, 'refresh-floor-yoga.sqlite'),
    FLOOR_YOGA: '1',
  };
  const spreadDir = join(dir, 'spread');
  mkdirSync(spreadDir, { mode: 0o700 });
  const spreadEnv = {
    ...serviceEnv,
    DATA_DIR: spreadDir,
    DATABASE_URL: `sqlite:${join(spreadDir, 'bench.sqlite')}`,
    BCRYPT_COST: String(SPREAD_BCRYPT_COST),
  };
  // BENCH_CPU_PROF=<dir> writes a V8 CPU profile of the service (the whole run) there, for `node --cpu-prof` digging.
  const profileDir = process.env.BENCH_CPU_PROF;
  const execArgv = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  log('starting the service, a second one for the spread rows, and the floors');
  const [service, floor, refreshFloor, yogaRefreshFloor, spreadService, fixedAnswer] = await Promise.all([
    started(startChild<{ url: string }>(join(import.meta.dirname, 'service.ts'), serviceEnv, { execArgv })),
    started(startChild<{ url: string }>(join(import.meta.dirname, 'floor.ts'), floorEnv)),
    started(startChild<{ url: string }>(join(import.meta.dirname, 'refresh-floor.ts'), refreshFloorEnv)),
    started(startChild<{ url: string }>(join(import.meta.dirname, 'refresh-floor.ts'), yogaRefreshFloorEnv)),
    started(startChild<{ url: string }>(join(import.meta.dirname, 'service.ts'), spreadEnv)),
    started(startChild<{ url: string }>(join(import.meta.dirname, 'fixed-answer.ts'), common)),
  ]);

  log(`registering ${SESSIONS} accounts (bcrypt cost ${BCRYPT_COST})`);
  const accounts = await registerAccounts(service.message.url, {
    count: SESSIONS,
    inFlight: BCRYPT_IN_FLIGHT,
    prefix: 'bench',
    password: PASSWORD,
  });
  const seeding = performance.now();
  log(`registering ${SPREAD_ACCOUNTS} accounts on the spread instance (bcrypt cost ${SPREAD_BCRYPT_COST})`);
  const spreadAccounts = await registerAccounts(spreadService.message.url, {
    count: SPREAD_ACCOUNTS,
    inFlight: SPREAD_IN_FLIGHT,
    prefix: 'spread',
    password: PASSWORD,
  });
  log(`registered them in ${((performance.now() - seeding) / 1000).toFixed(1)} s`);
  const floorTokens = await refreshFloor.ask<string[]>({ type: 'sessions', count: SESSIONS } satisfies SessionsRequest);
  const yogaFloorTokens = await yogaRefreshFloor.ask<string[]>({
    type: 'sessions',
    count: SESSIONS,
  } satisfies SessionsRequest);
  const [first] = accounts as [Tokens];
  const authorization = { authorization: `Bearer ${first.accessToken}` };
  const me: Scenario = { connections: CONNECTIONS, body: ME, headers: authorization };
  const meRead: Scenario = { connections: CONNECTIONS, body: ME_READ, headers: authorization };
  for (const { message } of [service, floor]) {
    for (const query of [ME_QUERY, ME_READ_QUERY]) {
      const check = await gql<{ me: { id: string } | null }>(message.url, query, {}, authorization);
      if (!check.me) throw new Error(`${message.url}: me is null with a valid access token`);
    }
  }

  const [meFloor, meService] = await measureSideBySide([
    { name: 'me on the floor', url: floor.message.url, scenario: me },
    { name: 'me on the service', url: service.message.url, scenario: me },
  ]);
  const [meReadFloor, meReadService] = await measureSideBySide([
    { name: 'me { id email } on the floor', url: floor.message.url, scenario: meRead },
    { name: 'me { id email } on the service', url: service.message.url, scenario: meRead },
  ]);
  const [refresh, refreshFloorResult, yogaRefreshFloorResult] = await measureRefreshes(
    '',
    { url: service.message.url, tokens: accounts.map((a) => a.refreshToken) },
    { url: refreshFloor.message.url, tokens: floorTokens },
    { url: yogaRefreshFloor.message.url, tokens: yogaFloorTokens },
  );
  const meReadSpread = await warmAndMeasure(
    `me { id email } over ${SPREAD_ACCOUNTS} accounts`,
    spreadService.message.url,
    spreadReadScenario(spreadAccounts, ME_READ, CONNECTIONS),
    SPREAD_WARMUP_SECONDS,
  );
  const refreshSpread = await warmAndMeasure(
    `refresh over ${SPREAD_ACCOUNTS} sessions`,
    spreadService.message.url,
    spreadRefreshScenario(
      spreadAccounts.map((a) => a.refreshToken),
      CONNECTIONS,
    ),
  );
  log(`requestPasswordReset: ${RESET_SAMPLES} addresses with an account and ${RESET_SAMPLES} without, one at a time`);
  const resetAnswers = await measureResetAnswers(
    spreadService.message.url,
    RESET_SAMPLES,
    (i) => `spread-${i}@example.com`,
  );
  // Measured as the spread rows are (one run after its warm-up): the tail no server goes below at this load.
  const fixed = await warmAndMeasure('a fixed answer from node:http', fixedAnswer.message.url, meRead);
  await Promise.all([stopped(refreshFloor), stopped(yogaRefreshFloor), stopped(spreadService), stopped(fixedAnswer)]);

  log(`raw bcrypt.compare: ${SECONDS} s with ${BCRYPT_IN_FLIGHT} in flight`);
  const bcryptEnv = {
    ...process.env,
    BCRYPT_COST: String(BCRYPT_COST),
    BCRYPT_IN_FLIGHT: String(BCRYPT_IN_FLIGHT),
    BCRYPT_SECONDS: String(SECONDS),
    BCRYPT_PASSWORD: PASSWORD,
  };
  const otherCpu = meterOtherCpu(ownPids);
  const bcryptChild = await started(
    startChild<BcryptResult>(join(import.meta.dirname, 'bcrypt.ts'), bcryptEnv, { timeoutMs: (SECONDS + 30) * 1000 }),
  );
  const raw = bcryptChild.message;
  const bcrypt = { rps: raw.compares / raw.seconds, p50: raw.p50, p99: raw.p99, otherCpu: otherCpu() };
  await stopped(bcryptChild);

  const loginBody = JSON.stringify({
    query: LOGIN,
    variables: { input: { email: 'bench-0@example.com', password: PASSWORD } },
  });
  const login = await warmAndMeasure(
    'login',
    service.message.url,
    { connections: BCRYPT_IN_FLIGHT, body: loginBody },
    WARMUP_SECONDS,
    service.pid,
  );

  // Client credentials with client_secret_basic: the clients row read under lock, a SHA-256 compare, a signature
  // and an audit row per token, all on one client (the hot case: one service fetching tokens).
  const benchClient = await service.ask<BenchClient>({ type: 'client' });
  const basic = Buffer.from(`${benchClient.id}:${benchClient.secret}`).toString('base64');
  const clientCredentials = await warmAndMeasure('client_credentials', service.message.url, {
    connections: CONNECTIONS,
    path: '/oauth/token',
    contentType: 'application/x-www-form-urlencoded',
    body: 'grant_type=client_credentials',
    headers: { authorization: `Basic ${basic}` },
  });

  const mariadbRuns: Record<string, LoadResult & Measured> = {};
  const mariadbRows = process.env.BENCH_MARIADB === '0' || !findBinary('mariadbd') ? undefined : await benchMariaDb();

  /**
   * The whole table again with the service and the refresh floor on a throwaway mariadbd: the token path, `me { id
   * email }`, refresh, login, and the spread rows on a second instance with its own database (the `me` floor has no
   * database and is measured again beside each `me` row; raw bcrypt's SQLite-run figure is login's reference).
   */
  async function benchMariaDb(): Promise<Row[]> {
    log('starting a throwaway mariadbd');
    const mariadb = await started(startMariaDb());
    const [serviceUrl, floorUrl, yogaFloorUrl, spreadUrl] = await Promise.all([
      createDatabase(mariadb, 'bench_service'),
      createDatabase(mariadb, 'bench_floor'),
      createDatabase(mariadb, 'bench_floor_yoga'),
      createDatabase(mariadb, 'bench_spread'),
    ]);
    const [onMariaDb, floorOnMariaDb, yogaFloorOnMariaDb, spreadOnMariaDb] = await Promise.all([
      started(
        startChild<{ url: string }>(
          join(import.meta.dirname, 'service.ts'),
          { ...serviceEnv, DATABASE_URL: serviceUrl },
          { execArgv },
        ),
      ),
      started(
        startChild<{ url: string }>(join(import.meta.dirname, 'refresh-floor.ts'), {
          ...refreshFloorEnv,
          FLOOR_MYSQL_URL: floorUrl,
        }),
      ),
      started(
        startChild<{ url: string }>(join(import.meta.dirname, 'refresh-floor.ts'), {
          ...yogaRefreshFloorEnv,
          FLOOR_MYSQL_URL: yogaFloorUrl,
        }),
      ),
      started(
        startChild<{ url: string }>(join(import.meta.dirname, 'service.ts'), { ...spreadEnv, DATABASE_URL: spreadUrl }),
      ),
    ]);
    log(`registering ${SESSIONS} accounts on MariaDB (bcrypt cost ${BCRYPT_COST})`);
    const mariaAccounts = await registerAccounts(onMariaDb.message.url, {
      count: SESSIONS,
      inFlight: BCRYPT_IN_FLIGHT,
      prefix: 'bench',
      password: PASSWORD,
    });
    const mariaSeeding = performance.now();
    log(`registering ${SPREAD_ACCOUNTS} accounts on the MariaDB spread instance (bcrypt cost ${SPREAD_BCRYPT_COST})`);
    const mariaSpreadAccounts = await registerAccounts(spreadOnMariaDb.message.url, {
      count: SPREAD_ACCOUNTS,
      inFlight: SPREAD_IN_FLIGHT,
      prefix: 'spread',
      password: PASSWORD,
    });
    log(`registered them in ${((performance.now() - mariaSeeding) / 1000).toFixed(1)} s`);
    const mariaFloorTokens = await floorOnMariaDb.ask<string[]>({
      type: 'sessions',
      count: SESSIONS,
    } satisfies SessionsRequest);
    const mariaYogaFloorTokens = await yogaFloorOnMariaDb.ask<string[]>({
      type: 'sessions',
      count: SESSIONS,
    } satisfies SessionsRequest);
    const [head] = mariaAccounts as [Tokens];
    const headAuthorization = { authorization: `Bearer ${head.accessToken}` };
    // The `me` floor has no database: it is measured again here, beside the service on MariaDB.
    const [tokenFloor, token] = await measureSideBySide([
      { name: 'MariaDB: me on the floor', url: floor.message.url, scenario: me },
      {
        name: 'MariaDB: me on the service',
        url: onMariaDb.message.url,
        scenario: { connections: CONNECTIONS, body: ME, headers: headAuthorization },
      },
    ]);
    const [readFloor, read] = await measureSideBySide([
      { name: 'MariaDB: me { id email } on the floor', url: floor.message.url, scenario: meRead },
      {
        name: 'MariaDB: me { id email } on the service',
        url: onMariaDb.message.url,
        scenario: { connections: CONNECTIONS, body: ME_READ, headers: headAuthorization },
      },
    ]);
    const [rotate, rotateFloor, rotateYogaFloor] = await measureRefreshes(
      'MariaDB: ',
      { url: onMariaDb.message.url, tokens: mariaAccounts.map((a) => a.refreshToken) },
      { url: floorOnMariaDb.message.url, tokens: mariaFloorTokens },
      { url: yogaFloorOnMariaDb.message.url, tokens: mariaYogaFloorTokens },
    );
    const readSpread = await warmAndMeasure(
      `MariaDB: me { id email } over ${SPREAD_ACCOUNTS} accounts`,
      spreadOnMariaDb.message.url,
      spreadReadScenario(mariaSpreadAccounts, ME_READ, CONNECTIONS),
      SPREAD_WARMUP_SECONDS,
    );
    const rotateSpread = await warmAndMeasure(
      `MariaDB: refresh over ${SPREAD_ACCOUNTS} sessions`,
      spreadOnMariaDb.message.url,
      spreadRefreshScenario(
        mariaSpreadAccounts.map((a) => a.refreshToken),
        CONNECTIONS,
      ),
    );
    await Promise.all([stopped(floorOnMariaDb), stopped(yogaFloorOnMariaDb), stopped(spreadOnMariaDb)]);
    const signIn = await warmAndMeasure(
      'MariaDB: login',
      onMariaDb.message.url,
      { connections: BCRYPT_IN_FLIGHT, body: loginBody },
      WARMUP_SECONDS,
      onMariaDb.pid,
      { name: 'mariadbd', pid: mariadb.pid },
    );
    await stopped(onMariaDb);
    await stopped(mariadb);
    mariadbRuns['MariaDB: me (service)'] = token;
    mariadbRuns['MariaDB: me { id email }'] = read;
    mariadbRuns['MariaDB: refresh'] = rotate;
    mariadbRuns['MariaDB: refresh (floor)'] = rotateFloor;
    mariadbRuns['MariaDB: refresh (floor through Yoga)'] = rotateYogaFloor;
    mariadbRuns['MariaDB: me { id email } (spread)'] = readSpread;
    mariadbRuns['MariaDB: refresh (spread)'] = rotateSpread;
    mariadbRuns['MariaDB: login'] = signIn;
    return [
      {
        operation: 'me { id roles } (token path)',
        result: token,
        reference: { name: 'floor', result: tokenFloor },
        target: { text: '≥ 100% of floor', met: token.rps >= tokenFloor.rps },
      },
      {
        operation: 'me { id email } (one row read)',
        result: read,
        reference: { name: 'floor', result: readFloor },
        target: { text: '≥ 90% of floor', met: read.rps >= 0.9 * readFloor.rps },
      },
      {
        operation: 'refresh (one hot session set)',
        result: rotate,
        reference: { name: 'floor', result: rotateFloor },
        target: { text: '≥ 70% of floor', met: rotate.rps >= 0.7 * rotateFloor.rps },
      },
      yogaShareRow(rotate, rotateYogaFloor),
      spreadRow(`me { id email }, ${count(SPREAD_ACCOUNTS)} active users`, readSpread, read),
      spreadRow(`refresh, ${count(SPREAD_ACCOUNTS)} sessions`, rotateSpread, rotate),
      {
        operation: `login (bcrypt ${BCRYPT_COST})`,
        result: signIn,
        reference: { name: 'raw bcrypt', result: bcrypt },
        target: { text: '≥ 95% of raw bcrypt', met: signIn.rps >= 0.95 * bcrypt.rps },
      },
      { operation: 'floor: refresh (MariaDB + jose)', result: rotateFloor },
      {
        operation: 'the same, as a bare Yoga resolver',
        result: rotateYogaFloor,
        reference: { name: 'floor', result: rotateFloor },
      },
    ];
  }

  // The realtime part has the machine to itself: the throughput service and the floor are done.
  await Promise.all([stopped(service), stopped(floor)]);
  const realtime: RealtimeResults = await benchRealtime({
    dir,
    env: common,
    jwtPrivateKey: serviceEnv.JWT_PRIVATE_KEY,
    track,
    ownPids,
    log,
  });
  const verifierPackage = await benchVerifierPackage({
    dir,
    env: common,
    jwtPrivateKey: serviceEnv.JWT_PRIVATE_KEY,
    sections: new Set(VERIFIER_SECTIONS),
    track,
    ownPids,
    log,
  });

  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const pool = process.env.UV_THREADPOOL_SIZE ?? '4 (default)';
  console.log(`Node ${process.version}, ${availableParallelism()} CPUs (${cpu}), UV_THREADPOOL_SIZE=${pool}`);
  console.log(
    `${SECONDS} s per row after ${WARMUP_SECONDS} s warm-up, ${CONNECTIONS} connections (login: ${BCRYPT_IN_FLIGHT}), ` +
      `each row with a floor measured beside it in ${SLICES} alternating slices (the spread rows and login after ` +
      `it), SQLite, bcrypt cost ${BCRYPT_COST} (the spread rows: a second instance, bcrypt cost ${SPREAD_BCRYPT_COST}; ` +
      `the \`me\` one after ${SPREAD_WARMUP_SECONDS} s of warm-up, about one request per account)\n`,
  );
  printTable([
    {
      operation: 'me { id roles } (token path)',
      result: meService,
      reference: { name: 'floor', result: meFloor },
      target: { text: '≥ 100% of floor', met: meService.rps >= meFloor.rps },
    },
    {
      operation: 'me { id email } (one row read)',
      result: meReadService,
      reference: { name: 'floor', result: meReadFloor },
      target: { text: '≥ 90% of floor', met: meReadService.rps >= 0.9 * meReadFloor.rps },
    },
    {
      operation: 'refresh (one hot session set)',
      result: refresh,
      reference: { name: 'floor', result: refreshFloorResult },
      target: { text: '≥ 70% of floor', met: refresh.rps >= 0.7 * refreshFloorResult.rps },
    },
    yogaShareRow(refresh, yogaRefreshFloorResult),
    spreadRow(`me { id email }, ${count(SPREAD_ACCOUNTS)} active users`, meReadSpread, meReadService),
    spreadRow(`refresh, ${count(SPREAD_ACCOUNTS)} sessions`, refreshSpread, refresh),
    { operation: 'client_credentials (POST /oauth/token, basic)', result: clientCredentials },
    {
      operation: `login (bcrypt ${BCRYPT_COST})`,
      result: login,
      reference: { name: 'raw bcrypt', result: bcrypt },
      target: { text: '≥ 95% of raw bcrypt', met: login.rps >= 0.95 * bcrypt.rps },
    },
    { operation: 'floor: me { id roles } (Yoga + jose)', result: meFloor },
    { operation: 'floor: me { id email }', result: meReadFloor },
    { operation: 'floor: refresh (SQLite + jose)', result: refreshFloorResult },
    {
      operation: 'the same, as a bare Yoga resolver',
      result: yogaRefreshFloorResult,
      reference: { name: 'floor', result: refreshFloorResult },
    },
    { operation: `raw bcrypt.compare (${BCRYPT_IN_FLIGHT} in flight)`, result: bcrypt },
  ]);
  printCpuSplit('', login, raw.cpuPerCompare);
  printTails([
    ['node:http with a fixed answer', fixed],
    ['floor me { id roles }', meFloor],
    ['floor me { id email }', meReadFloor],
    ['floor refresh', refreshFloorResult],
    ['floor refresh through Yoga', yogaRefreshFloorResult],
    ['me { id roles }', meService],
    ['me { id email }', meReadService],
    ['refresh', refresh],
  ]);
  printResetAnswers('', resetAnswers);
  if (mariadbRows) {
    console.log(
      '\nThe same rows on a throwaway mariadbd (the service, its spread instance and the refresh floors on MariaDB; the ' +
        'me floor, which has no database, measured again beside each me row; raw bcrypt as above):\n',
    );
    printTable(mariadbRows);
    printCpuSplit('MariaDB: ', mariadbRuns['MariaDB: login'] as Measured, raw.cpuPerCompare);
  }
  console.log(
    '\nother CPU: share of all CPUs used by processes outside the bench during the row. The bench alone can use every ' +
      `core, so above ${100 * SKEWED_OTHER_CPU}% another process (a build, a test run) skewed the row: run it again.`,
  );

  const runs: Record<string, LoadResult & Measured> = {
    'me (floor)': meFloor,
    'me (service)': meService,
    'me { id email } (floor)': meReadFloor,
    'me { id email } (service)': meReadService,
    refresh,
    'refresh (floor)': refreshFloorResult,
    'refresh (floor through Yoga)': yogaRefreshFloorResult,
    'me { id email } (spread)': meReadSpread,
    'refresh (spread)': refreshSpread,
    login,
    client_credentials: clientCredentials,
    ...mariadbRuns,
  };
  for (const [name, run] of Object.entries(runs)) {
    if (run.errors === 0) continue;
    console.log(`\n${name}: ${run.errors} errors, first: ${run.firstError ?? 'connection error or timeout'}`);
    // A measurement may miss a target, but requests that fail mean the numbers are not about the operation.
    if (run.ok === 0 || run.errors > 0.01 * (run.ok + run.errors)) exitCode = 1;
  }

  printRealtime(realtime);
  if (realtime.failed) exitCode = 1;
  printVerifierPackage(verifierPackage);
  if (verifierPackage.failed) exitCode = 1;
} catch (error) {
  console.error(error);
  exitCode = 1;
} finally {
  await cleanUp();
}
process.exitCode = exitCode;
