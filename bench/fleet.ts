// npm run bench:fleet: three instances behind HAProxy on MariaDB and Redis (tools/fleet.ts), driven by 1,000
// simulated users for two minutes; prints per operation req/s, p50/p99 and errors, revocation-to-event latency
// and RSS per instance, and whether token validation's p99 stays under 100 ms with zero unexpected errors.
import { readFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { type Exchange, type Fleet, graphqlPoster, residentBytes, startFleet } from '../tools/fleet.ts';

const USERS = Number(process.env.FLEET_USERS ?? 1000);
const SECONDS = Number(process.env.FLEET_DURATION ?? 120);
/**
 * Each user's pace: `me` about this often, a refresh about this often, and a logout about once in this. The
 * default (something every ~3.3 s per user, ~190 requests a second for 1,000 users) leaves a 2-CPU machine that
 * runs the whole fleet and this generator about half idle; FLEET_ME_EVERY_MS=2000 (~480/s) saturates one.
 */
const ME_EVERY_MS = Number(process.env.FLEET_ME_EVERY_MS ?? 5000);
const REFRESH_EVERY_MS = Number(process.env.FLEET_REFRESH_EVERY_MS ?? 10_000);
const LOGOUT_EVERY_MS = 60_000;
/** Users join evenly over this long (not 1,000 sign-ins in one burst); only what follows is measured. */
const RAMP_SECONDS = Number(process.env.FLEET_RAMP ?? 20);
/** The seeded accounts hash at bcrypt's lowest cost, so sign-ins measure the service, not bcrypt. */
const BCRYPT_COST = 4;
const TOKEN_P99_TARGET_MS = 100;
/** How long to wait after the run for the last logouts' events. */
const EVENT_GRACE_MS = 3000;
const PASSWORD = 'correct horse battery';
const SIGNED_IN = 'accessToken refreshToken session { id }';
const REGISTER = `mutation($input: RegisterInput!) { register(input: $input) { ${SIGNED_IN} } }`;
const LOGIN = `mutation($input: LoginInput!) { login(input: $input) { ${SIGNED_IN} } }`;
const REFRESH = `mutation($t: String!) { refresh(refreshToken: $t) { ${SIGNED_IN} } }`;
// The token path: answered from the verified claims and the revoked set, no database read.
const ME = '{ me { id roles } }';
const SUBSCRIPTION = 'subscription { sessionRevoked { sessionId reason } }';
type SignedIn = { accessToken: string; refreshToken: string; session: { id: string } };
type Operation = 'login' | 'me' | 'refresh' | 'logout';

const log = (message: string) => process.stderr.write(`bench:fleet: ${message}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const jitter = (ms: number) => ms * (0.5 + Math.random());

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

const failure = (exchange: Exchange) =>
  exchange.failure ??
  (exchange.status !== 200
    ? `HTTP ${exchange.status}`
    : exchange.errors?.length
      ? `${exchange.errors[0]?.extensions?.code} ${exchange.errors[0]?.extensions?.reason ?? exchange.errors[0]?.message}`
      : undefined);

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); 0 when it is gone. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    // The fields after the command name, which may itself contain spaces: utime and stime are the 12th and 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

interface Revocation {
  readonly start: number;
  servedBy?: string;
  eventAt?: number;
  readonly watcherInstance: () => string | undefined;
}

const fleetEnv = {
  BCRYPT_COST: String(BCRYPT_COST),
  LOG_LEVEL: 'error',
  // All the simulated users come from 127.0.0.1: per-IP limits would throttle the bench, not protect anything.
  RATE_LIMIT_REGISTER_IP: '1000000/1h',
  RATE_LIMIT_LOGIN_IP: '1000000/15m',
  RATE_LIMIT_LOGIN_ACCOUNT: '1000000/15m',
};

async function main() {
  const load = () =>
    loadavg()
      .map((n) => n.toFixed(2))
      .join(' ');
  log(`load average before start: ${load()} (${availableParallelism()} CPUs)`);
  log('starting MariaDB, Redis, three instances and HAProxy');
  const fleet: Fleet = await startFleet({ env: fleetEnv });
  // A socket per request in flight, as 1,000 separate clients would have: a shared pool would queue a user's `me`
  // behind other users' slow requests inside the bench and measure that queue.
  const agent = new Agent({ keepAlive: true });
  const post = graphqlPoster(fleet.url, agent);
  const wsUrl = `${fleet.url.replace(/^http/, 'ws')}/graphql`;
  const latencies: Record<Operation, number[]> = { login: [], me: [], refresh: [], logout: [] };
  const errors: Record<Operation, number> = { login: 0, me: 0, refresh: 0, logout: 0 };
  const firstErrors: string[] = [];
  let subscriptionErrors = 0;
  const revocations = new Map<string, Revocation>();
  const rss = new Map<number, { peak: number; last: number }>();
  const sockets: { dispose(): void | Promise<void> }[] = [];
  let running = true;

  let measuring = false;
  const record = (op: Operation, exchange: Exchange) => {
    if (!measuring) return;
    latencies[op].push(exchange.end - exchange.start);
    const why = failure(exchange);
    if (why) {
      errors[op]++;
      if (firstErrors.length < 5) firstErrors.push(`${op}: ${why}`);
    }
  };

  try {
    log(`registering ${USERS} accounts through HAProxy (bcrypt cost ${BCRYPT_COST})`);
    const accounts: { email: string; watcher: SignedIn }[] = [];
    const prefix = Date.now().toString(36);
    for (let next = 0; next < USERS; ) {
      const batch = Array.from(
        { length: Math.min(32, USERS - next) },
        (_, i) => `fleet-${prefix}-${next + i}@example.com`,
      );
      next += batch.length;
      const answers = await Promise.all(
        batch.map((email) => post<{ register: SignedIn }>(REGISTER, { input: { email, password: PASSWORD } })),
      );
      answers.forEach((answer, i) => {
        const watcher = answer.data?.register;
        if (!watcher) throw new Error(`register failed: ${failure(answer)}`);
        accounts.push({ email: batch[i] as string, watcher });
      });
    }

    log(`opening ${USERS} sessionRevoked subscriptions over WebSockets through HAProxy`);
    const subscribed = await Promise.all(
      accounts.map(
        (account) =>
          new Promise<() => string | undefined>((resolve, reject) => {
            let instance: string | undefined;
            // ws exposes the upgrade response: which instance HAProxy sent this socket to.
            class Tracked extends WebSocket {
              constructor(...args: ConstructorParameters<typeof WebSocket>) {
                super(...args);
                this.on('upgrade', (response) => {
                  const servedBy = response.headers['x-served-by'];
                  instance = typeof servedBy === 'string' ? servedBy : undefined;
                });
              }
            }
            const client = createClient({
              url: wsUrl,
              webSocketImpl: Tracked,
              connectionParams: { authorization: `Bearer ${account.watcher.accessToken}` },
              retryAttempts: 0,
              lazy: false,
              onNonLazyError: reject,
              on: {
                connected: () => setTimeout(() => resolve(() => instance), 0),
                closed: () => {
                  if (running) subscriptionErrors++;
                },
              },
            });
            sockets.push(client);
            client.subscribe<{ sessionRevoked: { sessionId: string } }>(
              { query: SUBSCRIPTION },
              {
                next: ({ data }) => {
                  const revocation = revocations.get(data?.sessionRevoked.sessionId ?? '');
                  if (revocation && revocation.eventAt === undefined) revocation.eventAt = performance.now();
                },
                error: () => {
                  if (running) subscriptionErrors++;
                },
                complete: () => {},
              },
            );
          }),
      ),
    );

    // The subscribe messages follow `connected`: let every instance register them before anyone logs out.
    await sleep(1000);
    const perInstance = await Promise.all(
      fleet.instances.map(async (instance) => {
        const text = await (await fetch(`${instance.url}/metrics`)).text();
        return Number(/^graphql_ws_subscriptions_open (\d+)/m.exec(text)?.[1] ?? 0);
      }),
    );
    log(`subscriptions per instance: ${perInstance.join(', ')}`);

    const sampleRss = () => {
      for (const instance of fleet.instances) {
        const bytes = residentBytes(instance.pid) ?? 0;
        const seen = rss.get(instance.port) ?? { peak: 0, last: 0 };
        rss.set(instance.port, { peak: Math.max(seen.peak, bytes), last: bytes });
      }
    };
    const sampler = setInterval(sampleRss, 1000);

    const simulate = async (
      account: (typeof accounts)[number],
      watcherInstance: () => string | undefined,
      joinAfterMs: number,
    ) => {
      await sleep(joinAfterMs);
      let signedIn: SignedIn | undefined;
      let nextRefresh = performance.now() + Math.random() * REFRESH_EVERY_MS;
      while (running) {
        if (!signedIn) {
          const exchange = await post<{ login: SignedIn }>(LOGIN, {
            input: { email: account.email, password: PASSWORD },
          });
          record('login', exchange);
          signedIn = exchange.data?.login ?? undefined;
        } else if (performance.now() >= nextRefresh) {
          // From now, not from when it was due: a slow answer must not make the user refresh back to back.
          nextRefresh = performance.now() + jitter(REFRESH_EVERY_MS);
          const exchange = await post<{ refresh: SignedIn }>(REFRESH, { t: signedIn.refreshToken });
          record('refresh', exchange);
          signedIn = exchange.data?.refresh ?? undefined;
        } else if (Math.random() < ME_EVERY_MS / LOGOUT_EVERY_MS) {
          const revocation: Revocation = { start: performance.now(), watcherInstance };
          if (measuring) revocations.set(signedIn.session.id, revocation);
          const exchange = await post('mutation { logout }', {}, signedIn.accessToken);
          // Only a logout that said so revoked anything (one refused with 503 has no event to wait for).
          if ((exchange.data as { logout?: boolean } | null | undefined)?.logout === true) {
            revocation.servedBy = exchange.servedBy ?? 'unknown';
          }
          record('logout', exchange);
          signedIn = undefined;
        } else {
          record('me', await post(ME, {}, signedIn.accessToken));
        }
        await sleep(jitter(ME_EVERY_MS));
      }
    };

    log(
      `${USERS} users joining over ${RAMP_SECONDS} s: me every ~${ME_EVERY_MS} ms, refresh every ~${REFRESH_EVERY_MS} ms`,
    );
    const users = Promise.all(
      accounts.map((account, i) => simulate(account, subscribed[i] as () => string, (i / USERS) * RAMP_SECONDS * 1000)),
    );
    await sleep(RAMP_SECONDS * 1000 + ME_EVERY_MS);
    log(`all ${USERS} users active: measuring for ${SECONDS} s`);
    measuring = true;
    const fleetPids = () => [
      ...fleet.instances.map((i) => i.pid),
      fleet.mariadb.pid,
      fleet.redis.pid,
      fleet.balancer.pid,
    ];
    const fleetCpu = () => fleetPids().reduce((sum: number, pid) => sum + cpuSeconds(pid), 0);
    const cpuAtStart = fleetCpu();
    const benchCpuAtStart = process.cpuUsage();
    const loadAtStart = load();
    const started = performance.now();
    await sleep(SECONDS * 1000);
    running = false;
    await users;
    const elapsed = (performance.now() - started) / 1000;
    const cpuUsed = fleetCpu() - cpuAtStart;
    const benchUsage = process.cpuUsage(benchCpuAtStart);
    const benchCpu = (benchUsage.user + benchUsage.system) / 1e6;
    const loadAtEnd = load();
    sampleRss();
    clearInterval(sampler);
    await sleep(EVENT_GRACE_MS);

    const ms = (n: number) => (Number.isNaN(n) ? '-' : n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US'));
    const count = (n: number) => Math.round(n).toLocaleString('en-US');
    const rows: string[][] = [['operation', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'errors']];
    for (const op of ['me', 'refresh', 'login', 'logout'] as const) {
      const sorted = [...latencies[op]].sort((a, b) => a - b);
      const name = op === 'me' ? 'me (token validation)' : op;
      rows.push([
        name,
        count(sorted.length),
        (sorted.length / elapsed).toFixed(0),
        ms(percentile(sorted, 50)),
        ms(percentile(sorted, 99)),
        count(errors[op]),
      ]);
    }
    const all = [...revocations.values()].filter((r) => r.servedBy !== undefined);
    const missing = all.filter((r) => r.eventAt === undefined).length;
    for (const [label, cross] of [
      ['across instances', true],
      ['same instance', false],
    ] as const) {
      const sorted = all
        .filter((r) => r.eventAt !== undefined && (r.servedBy !== r.watcherInstance()) === cross)
        .map((r) => (r.eventAt as number) - r.start)
        .sort((a, b) => a - b);
      rows.push([
        `logout → event, ${label}`,
        count(sorted.length),
        '',
        ms(percentile(sorted, 50)),
        ms(percentile(sorted, 99)),
        '',
      ]);
    }
    const widths = rows[0]?.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length))) ?? [];
    const line = (row: string[]) =>
      row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join('  ');
    const out: string[] = [
      `bench:fleet: 3 instances (node src/main.ts) behind HAProxy ${fleet.url}, one MariaDB, one Redis`,
      `${count(USERS)} concurrent simulated users (joined over ${RAMP_SECONDS} s, not measured), measured for ${elapsed.toFixed(0)} s, each: a sessionRevoked subscription over WebSocket, me every ~${ME_EVERY_MS / 1000} s, refresh every ~${REFRESH_EVERY_MS / 1000} s, a logout (then sign-in) about once a minute`,
      `seeded accounts hashed at bcrypt cost ${BCRYPT_COST} (BCRYPT_COST=${BCRYPT_COST}), not the production default 12`,
      `load average (1/5/15 min) at start ${loadAtStart}, at end ${loadAtEnd}, on ${availableParallelism()} CPUs`,
      '',
      line(rows[0] as string[]),
      ...rows.slice(1).map(line),
      '',
      `logout → event: from sending logout to the event on the user's subscription (the socket HAProxy placed; "across" when the logout went to another instance); missing events: ${missing}`,
      `subscription errors or unexpected closes: ${subscriptionErrors}`,
      `CPU while measuring: the fleet (3 instances, MariaDB, Redis, HAProxy) ${cpuUsed.toFixed(0)} s, ${((cpuUsed / elapsed / availableParallelism()) * 100).toFixed(0)}% of the machine, ${(
        (cpuUsed * 1000) /
          Math.max(
            1,
            Object.values(latencies).reduce((n, l) => n + l.length, 0),
          )
      ).toFixed(
        2,
      )} CPU ms per request; this load generator ${benchCpu.toFixed(0)} s (${((benchCpu / elapsed / availableParallelism()) * 100).toFixed(0)}%); the rest went to other processes`,
      ...fleet.instances.map((instance, i) => {
        const seen = rss.get(instance.port);
        return `instance i${instance.port}: RSS ${((seen?.last ?? 0) / 2 ** 20).toFixed(0)} MiB at end, peak ${((seen?.peak ?? 0) / 2 ** 20).toFixed(0)} MiB; ${perInstance[i]} subscriptions`;
      }),
    ];
    if (firstErrors.length) out.push(`first errors: ${firstErrors.join('; ')}`);
    const meSorted = [...latencies.me].sort((a, b) => a - b);
    const p99 = percentile(meSorted, 99);
    const unexpected = Object.values(errors).reduce((a, b) => a + b, 0) + subscriptionErrors + missing;
    const met = p99 < TOKEN_P99_TARGET_MS && unexpected === 0 && USERS >= 1000;
    out.push(
      '',
      `requirement: token validation p99 < ${TOKEN_P99_TARGET_MS} ms at 1,000+ concurrent users, zero unexpected errors: ${met ? 'MET' : 'NOT MET'} (p99 ${ms(p99)} ms, ${count(USERS)} users, ${unexpected} unexpected errors)`,
    );
    process.stdout.write(`${out.join('\n')}\n`);
    process.exitCode = met ? 0 : 1;
  } finally {
    running = false;
    await Promise.all(sockets.map((socket) => socket.dispose()));
    agent.destroy();
    await fleet.stop();
  }
}

await main();
