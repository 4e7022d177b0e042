// The bench's second part: two service instances sharing one SQLite file and one throwaway Redis; revocation
// latency to a graphql-ws client on the same and on the other instance, and memory per idle subscription.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { findBinary, type RunningService, startRedis } from '../tools/services.ts';
import { type Child, startChild } from './children.ts';
import { meterOtherCpu } from './cpu.ts';
import {
  type LatencyResult,
  type MemoryResult,
  measureRevocationLatency,
  measureSubscriptionMemory,
  openFilesLimit,
  registerAccounts,
} from './revocation.ts';

export const REVOCATIONS = Number(process.env.BENCH_REVOCATIONS ?? 200);
const REVOCATION_WARM_UP = 20;
/** Subscribers (one account each) the revocations of a set-up take turns on. */
const LATENCY_ACCOUNTS = 10;
export const SUBSCRIPTIONS = Number(process.env.BENCH_SUBSCRIPTIONS ?? 5000);
const SUBSCRIPTION_WARM_UP = 200;
/** A session may run WS_MAX_OPERATIONS (100) operations at once across its sockets: 50 subscriptions per account. */
const SUBSCRIPTIONS_PER_ACCOUNT = 50;
const SUBSCRIPTIONS_IN_FLIGHT = 50;
/** Files each process keeps for itself besides the sockets (database, Redis, stdio, libuv, …). */
const SPARE_FILES = 200;

export interface Stoppable {
  readonly pid: number;
  stop(): Promise<void>;
}

export interface RealtimeOptions {
  /** A directory of the run's own, removed by the caller. */
  readonly dir: string;
  /** Environment shared with the other services of the run (ISSUER, AUDIENCE, …). */
  readonly env: NodeJS.ProcessEnv;
  readonly jwtPrivateKey: string;
  /** Called with every process started, so that the caller stops it on an interrupt too. */
  readonly track: <T extends Stoppable>(process: T) => T;
  /** The pids whose CPU counts as the bench's own. */
  readonly ownPids: () => number[];
  readonly log: (message: string) => void;
}

export interface Latency {
  readonly result?: LatencyResult;
  readonly otherCpu?: number | undefined;
  /** Why there is no result. */
  readonly skipped?: string;
}

export interface RealtimeResults {
  /** How the instances share state, for the table's caption. */
  readonly setUp: string;
  readonly sameInstance: Latency;
  readonly crossInstance: Latency;
  readonly memory: {
    readonly result?: MemoryResult;
    readonly skipped?: string;
    readonly instance: string;
    /** The soft limit on open files (ulimit -n), when known. */
    readonly filesLimit?: number | undefined;
  };
  /** Things the reader should know (limits lowered, failures). */
  readonly notes: string[];
  /** Whether a part failed outright (rather than being skipped for want of redis-server). */
  readonly failed: boolean;
}

const why = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Runs both measurements; never throws for a failed measurement (it is reported), only stops its processes. */
export async function benchRealtime(options: RealtimeOptions): Promise<RealtimeResults> {
  const { track, log } = options;
  const notes: string[] = [];
  const own: Stoppable[] = [];
  const keep = <T extends Stoppable>(process: T) => {
    own.push(process);
    return track(process);
  };
  let failed = false;
  const attempt = async <T>(name: string, run: () => Promise<T>): Promise<T | { skipped: string }> => {
    try {
      return await run();
    } catch (error) {
      failed = true;
      log(`${name} failed: ${why(error)}`);
      return { skipped: `failed: ${why(error)}` };
    }
  };
  try {
    const binary = findBinary('redis-server');
    let redis: RunningService | undefined;
    if (!binary) notes.push('redis-server not found: no cross-instance row (apt-get install redis-server).');
    else {
      log(`starting ${binary}`);
      try {
        redis = keep(await startRedis());
      } catch (error) {
        failed = true;
        notes.push(`redis-server did not start (${why(error)}): no cross-instance row.`);
      }
    }
    const dir = join(options.dir, 'realtime');
    mkdirSync(dir, { recursive: true });
    const metricsToken = randomBytes(16).toString('hex');
    const env = {
      ...options.env,
      DATA_DIR: dir,
      DATABASE_URL: `sqlite:${join(dir, 'shared.sqlite')}`,
      ...(redis ? { REDIS_URL: redis.url } : {}),
      BCRYPT_COST: '4',
      LOG_LEVEL: 'silent',
      PORT: '0',
      HOST: '127.0.0.1',
      JWT_ALG: 'EdDSA',
      JWT_PRIVATE_KEY: options.jwtPrivateKey,
      METRICS_TOKEN: metricsToken,
      RATE_LIMIT_REGISTER_IP: '1000000/1h',
      RATE_LIMIT_LOGIN_ACCOUNT: '1000000/15m',
      RATE_LIMIT_LOGIN_IP: '1000000/15m',
    };
    const script = join(import.meta.dirname, 'service.ts');
    // --expose-gc: the memory report collects garbage first. One at a time: the first applies the migrations.
    const execArgv = ['--expose-gc'];
    log(`starting ${redis ? 'two instances sharing one SQLite file and Redis' : 'one instance (no Redis)'}`);
    const one = keep(await startChild<{ url: string }>(script, env, { execArgv }));
    const two = redis ? keep(await startChild<{ url: string }>(script, env, { execArgv })) : undefined;
    const urlOne = one.message.url;

    const latency = async (name: string, subscribeUrl: string, prefix: string): Promise<Latency> => {
      log(`${name}: ${REVOCATION_WARM_UP} + ${REVOCATIONS} revocations, ${LATENCY_ACCOUNTS} subscribers`);
      const outcome = await attempt(name, async () => {
        const accounts = await registerAccounts(urlOne, prefix, LATENCY_ACCOUNTS);
        const otherCpu = meterOtherCpu(options.ownPids);
        const result = await measureRevocationLatency({
          subscribeUrl,
          revokeUrl: urlOne,
          metricsToken,
          accounts,
          samples: REVOCATIONS,
          warmUp: REVOCATION_WARM_UP,
        });
        return { result, otherCpu: otherCpu() };
      });
      return outcome;
    };
    const sameInstance = await latency('revocation, same instance', urlOne, 'same');
    const crossInstance = two
      ? await latency('revocation, cross-instance', two.message.url, 'cross')
      : { skipped: redis ? 'no second instance' : 'skipped: no Redis' };

    const target: Child<{ url: string }> = two ?? one;
    const instance = two ? 'instance 2' : 'the instance';
    const limit = openFilesLimit();
    let count = SUBSCRIPTIONS;
    if (limit !== undefined && limit < count + SPARE_FILES) {
      // The bench and the service each hold one file per socket (the service inherits this limit).
      count = Math.max(0, Math.floor(limit - SPARE_FILES));
      notes.push(
        `ulimit -n is ${limit}: ${count} subscriptions instead of ${SUBSCRIPTIONS} (each socket is a file in both ` +
          `the bench and the service); run \`ulimit -n ${SUBSCRIPTIONS + 2 * SPARE_FILES}\` first for all of them.`,
      );
    }
    let memory: RealtimeResults['memory'];
    if (count < 100) memory = { instance, skipped: `skipped: ulimit -n is ${limit}` };
    else {
      log(`memory: ${SUBSCRIPTION_WARM_UP} subscriptions opened and closed, then ${count} (${instance})`);
      const outcome = await attempt('memory per subscription', async () => {
        const accounts = await registerAccounts(urlOne, 'idle', Math.ceil(count / SUBSCRIPTIONS_PER_ACCOUNT));
        return measureSubscriptionMemory({
          url: target.message.url,
          service: target,
          metricsToken,
          accessTokens: accounts.map((a) => a.accessToken),
          count,
          warmUp: SUBSCRIPTION_WARM_UP,
          inFlight: SUBSCRIPTIONS_IN_FLIGHT,
        });
      });
      memory = {
        instance,
        filesLimit: limit,
        ...('skipped' in outcome ? { skipped: outcome.skipped } : { result: outcome }),
      };
      const result = memory.result;
      if (result && result.failed > 0) {
        notes.push(
          `${result.failed} sockets could not subscribe (ulimit -n is ${limit ?? 'unknown'}), first: ` +
            `${result.firstFailure ?? '?'}; the row is about the ${result.open} that did.`,
        );
      }
      if (result && !result.after.collected) notes.push('the service has no global.gc: memory is without a GC.');
    }
    return {
      setUp: redis ? 'two instances sharing one SQLite file and one Redis' : 'one instance, no Redis',
      sameInstance,
      crossInstance,
      memory,
      notes,
      failed,
    };
  } finally {
    await Promise.all(own.map((process) => process.stop()));
  }
}

const fixed = (n: number) => (Math.abs(n) < 10 ? n.toFixed(2) : n.toFixed(1));

/** Nearest-rank quantile of sorted values (as the rest of the bench). */
const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) => `| ${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export function printRealtime(results: RealtimeResults): void {
  console.log(
    `\nRevocation latency: revokeSession's HTTP response read → sessionRevoked event received by a graphql-ws ` +
      `client, ms (${REVOCATIONS} revocations each after ${REVOCATION_WARM_UP} warm-up, one at a time; ` +
      `${results.setUp}, bcrypt cost 4)\n`,
  );
  const latencyRow = (name: string, { result, otherCpu, skipped }: Latency) => {
    if (!result) return [name, skipped ?? '', '', '', '', '', ''];
    const sorted = [...result.samples].sort((a, b) => a - b);
    const first = sorted.filter((s) => s < 0).length;
    return [
      name,
      fixed(quantile(sorted, 0.5)),
      fixed(quantile(sorted, 0.99)),
      sorted.length ? `${fixed(sorted[0] as number)} / ${fixed(sorted.at(-1) as number)}` : '',
      `${first} of ${sorted.length}`,
      String(result.lost),
      otherCpu === undefined ? '?' : `${(100 * otherCpu).toFixed(0)}%`,
    ];
  };
  console.log(
    table(
      ['set-up', 'p50 ms', 'p99 ms', 'min / max ms', 'event first (< 0)', 'lost', 'other CPU'],
      [
        latencyRow('same instance (subscribe on 1, revoke on 1)', results.sameInstance),
        latencyRow('cross-instance (subscribe on 2, revoke on 1, via Redis)', results.crossInstance),
      ],
    ),
  );
  console.log(
    '\nA negative latency is reported as measured: the event reached the client before the revoking response did. ' +
      'After committing, the revoking instance tells its own subscribers, then publishes to Redis and waits until ' +
      'every instance has confirmed applying it, all before it answers, so either set-up can see the event first. ' +
      "'lost': no event within 5 s.",
  );

  const { memory } = results;
  const { result } = memory;
  console.log(
    `\nMemory per idle subscription: sessionRevoked subscriptions on ${memory.instance}, one per graphql-ws socket, ` +
      'process.memoryUsage() of the service after a full GC\n',
  );
  if (!result) console.log(`${memory.skipped ?? ''}`);
  else {
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
    const row = (name: string, key: 'rss' | 'heapUsed' | 'external') => [
      name,
      mib(result.before[key]),
      mib(result.after[key]),
      mib(result.after[key] - result.before[key]),
      result.open > 0 ? `${((result.after[key] - result.before[key]) / result.open / 1024).toFixed(1)} KiB` : '',
    ];
    console.log(
      table(
        ['', 'before', `with ${result.open.toLocaleString('en-US')} open`, 'after − before', 'per subscription'],
        [row('RSS', 'rss'), row('V8 heap used', 'heapUsed'), row('external (off-heap buffers)', 'external')],
      ),
    );
    console.log(
      `\n${result.open.toLocaleString('en-US')} subscriptions opened in ${result.openSeconds.toFixed(1)} s ` +
        `(${SUBSCRIPTIONS_IN_FLIGHT} sockets connecting at a time) after ${SUBSCRIPTION_WARM_UP} opened and ` +
        `closed to warm up; ulimit -n ${memory.filesLimit ?? 'unknown'}. RSS includes memory freed but kept by the ` +
        'allocator.',
    );
  }
  for (const note of results.notes) console.log(`\nnote: ${note}`);
}
