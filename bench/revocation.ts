// Revocation latency (revokeSession's HTTP response → the sessionRevoked event on a graphql-ws client), the memory an
// idle sessionRevoked subscription costs the service, and revocation → refusal by the verifier package (issue 15).
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TokenVerifier } from 'graphql-auth-verifier';
import type { JSONWebKeySet } from 'jose';
import { findBinary, type RunningService, startRedis } from '../tools/services.ts';
import { type Child, startChild } from './children.ts';
import { meterOtherCpu } from './cpu.ts';
import { gql } from './load.ts';
import type { BenchClient, MemoryReport } from './service.ts';
import { type Subscriber, settleSubscriptions, subscribeSessionRevoked } from './subscriptions.ts';
import { measureVerifyThroughput, printVerifyThroughput, type VerifyThroughputRow } from './verify.ts';

const PASSWORD = 'correct horse battery';
const REGISTER = 'mutation($input: RegisterInput!) { register(input: $input) { accessToken session { id } } }';
const LOGIN = 'mutation($input: LoginInput!) { login(input: $input) { session { id } } }';
const REVOKE = 'mutation($id: ID!) { revokeSession(id: $id) }';
/** How long a sample waits for its event before counting it as lost. */
const EVENT_TIMEOUT_MS = 5000;
/** How long a socket may take to be accepted and acknowledged (a server out of file descriptors never accepts). */
const CONNECT_TIMEOUT_MS = 10_000;

/** Resolves with undefined once `subscriber` is connected, or with why not. */
function connectedOrWhy(subscriber: Subscriber): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no connection_ack within ${CONNECT_TIMEOUT_MS} ms`), CONNECT_TIMEOUT_MS);
  });
  return Promise.race([subscriber.connected.then(() => undefined), subscriber.failed, timeout]).finally(() =>
    clearTimeout(timer),
  );
}

export interface Account {
  readonly email: string;
  readonly accessToken: string;
}

/** Signs up `count` accounts, `inFlight` at a time (bcrypt: the instances run at cost 4). */
export async function registerAccounts(url: string, prefix: string, count: number, inFlight = 4): Promise<Account[]> {
  const accounts = new Array<Account>(count);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const email = `${prefix}-${i}@example.com`;
      const { register } = await gql<{ register: { accessToken: string } }>(url, REGISTER, {
        input: { email, password: PASSWORD },
      });
      accounts[i] = { email, accessToken: register.accessToken };
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return accounts;
}

export interface LatencyResult {
  /** t(event received) − t(mutation response received), ms, in sample order; negative when the event came first. */
  readonly samples: number[];
  /** Revocations whose event did not arrive within EVENT_TIMEOUT_MS. */
  readonly lost: number;
}

export interface LatencySetUp {
  /** The instance the subscribers are connected to. */
  readonly subscribeUrl: string;
  /** The instance that serves login and revokeSession. */
  readonly revokeUrl: string;
  readonly metricsToken: string;
  /** Accounts registered for this set-up: one subscriber each, used in turn. */
  readonly accounts: readonly Account[];
  readonly samples: number;
  /** Revocations made and thrown away first (JIT, connection pools). */
  readonly warmUp: number;
}

/**
 * One subscriber per account (session A, kept open throughout); each sample logs in (session B) and, as A,
 * revokes B, one at a time: t0 when revokeSession's response has been read, t1 when B's event reached A's client.
 */
export async function measureRevocationLatency(setUp: LatencySetUp): Promise<LatencyResult> {
  const { subscribeUrl, revokeUrl, metricsToken, accounts } = setUp;
  const baseline = (await settleSubscriptions(subscribeUrl, metricsToken, 0, 0)) ?? 0;
  const subscribers = accounts.map((account) => subscribeSessionRevoked(subscribeUrl, account.accessToken));
  try {
    const failures = (await Promise.all(subscribers.map(connectedOrWhy))).filter((why) => why !== undefined);
    if (failures.length > 0) throw new Error(`${failures.length} subscribers failed, first: ${failures[0]}`);
    // The event only reaches a subscription the server has set up: wait for the server to count them all.
    const expected = baseline + subscribers.length;
    const open = await settleSubscriptions(subscribeUrl, metricsToken, expected, 10_000);
    if (open !== undefined && open !== expected) {
      throw new Error(`${subscribeUrl} reports ${open} open subscriptions, expected ${expected}`);
    }

    const samples: number[] = [];
    let lost = 0;
    for (let i = 0; i < setUp.warmUp + setUp.samples; i++) {
      const account = accounts[i % accounts.length] as Account;
      const subscriber = subscribers[i % accounts.length] as Subscriber;
      const { login } = await gql<{ login: { session: { id: string } } }>(revokeUrl, LOGIN, {
        input: { email: account.email, password: PASSWORD },
      });
      const sessionId = login.session.id;
      const { revokeSession } = await gql<{ revokeSession: boolean }>(
        revokeUrl,
        REVOKE,
        { id: sessionId },
        { authorization: `Bearer ${account.accessToken}` },
      );
      const t0 = performance.now();
      if (!revokeSession) throw new Error(`revokeSession(${sessionId}) returned false`);
      const t1 = await subscriber.arrival(sessionId, EVENT_TIMEOUT_MS);
      if (i < setUp.warmUp) continue;
      if (t1 === undefined) lost++;
      else samples.push(t1 - t0);
      // A subscriber that has gone would cost EVENT_TIMEOUT_MS per sample: give up instead.
      if (lost >= 5) throw new Error(`${lost} events did not arrive within ${EVENT_TIMEOUT_MS} ms`);
    }
    return { samples, lost };
  } finally {
    await Promise.all(subscribers.map((s) => s.dispose()));
    await settleSubscriptions(subscribeUrl, metricsToken, baseline, 5000);
  }
}

/** The soft limit on open files of this process (Linux /proc), or undefined when unknown. */
export function openFilesLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    return line === undefined ? undefined : line === 'unlimited' ? Number.POSITIVE_INFINITY : Number(line);
  } catch {
    return undefined;
  }
}

export interface MemoryResult {
  /** Subscriptions the service reported open when `after` was taken (the clients' count without its gauge). */
  readonly open: number;
  /** Sockets that could not be opened or subscribed, and the first reason. */
  readonly failed: number;
  readonly firstFailure?: string;
  /** Seconds it took to open them all. */
  readonly openSeconds: number;
  readonly before: MemoryReport;
  readonly after: MemoryReport;
}

export interface MemorySetUp {
  readonly url: string;
  /** The service child (bench/service.ts), asked for its memory over IPC. */
  readonly service: Child<unknown>;
  readonly metricsToken: string;
  /** Subscriptions use these tokens in turn (those of one user are independent of each other). */
  readonly accessTokens: readonly string[];
  readonly count: number;
  /** Opened and closed before `before`, so that code compiled and pools grown on first use are not counted. */
  readonly warmUp: number;
  /** Sockets being opened at once. */
  readonly inFlight: number;
}

/** Opens up to `count` one-subscription sockets, `inFlight` at a time; stops early when they keep failing. */
async function openMany(setUp: MemorySetUp, count: number, into: Subscriber[]) {
  let next = 0;
  let failed = 0;
  let failedInARow = 0;
  let firstFailure: string | undefined;
  const worker = async () => {
    for (let i = next++; i < count && failedInARow < 100; i = next++) {
      const token = setUp.accessTokens[i % setUp.accessTokens.length] as string;
      const subscriber = subscribeSessionRevoked(setUp.url, token);
      into.push(subscriber);
      const outcome = await connectedOrWhy(subscriber);
      if (outcome === undefined) {
        failedInARow = 0;
        continue;
      }
      failed++;
      failedInARow++;
      firstFailure ??= outcome;
    }
  };
  await Promise.all(Array.from({ length: setUp.inFlight }, worker));
  return { failed, ...(firstFailure === undefined ? {} : { firstFailure }) };
}

async function closeAll(subscribers: Subscriber[]) {
  for (let i = 0; i < subscribers.length; i += 500) {
    await Promise.all(subscribers.slice(i, i + 500).map((s) => s.dispose().catch(() => {})));
  }
  subscribers.length = 0;
}

/** Memory of the service (after full GCs) before and with `count` idle sessionRevoked subscriptions open. */
export async function measureSubscriptionMemory(setUp: MemorySetUp): Promise<MemoryResult> {
  const { url, metricsToken } = setUp;
  const memory = () => setUp.service.ask<MemoryReport>({ type: 'memory' });
  const subscribers: Subscriber[] = [];
  try {
    const baseline = (await settleSubscriptions(url, metricsToken, 0, 0)) ?? 0;
    await openMany(setUp, setUp.warmUp, subscribers);
    await settleSubscriptions(url, metricsToken, baseline + subscribers.length, 10_000);
    await closeAll(subscribers);
    await settleSubscriptions(url, metricsToken, baseline, 10_000);
    // Closed sockets linger a moment in the server's timers and pools.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const before = await memory();

    const started = performance.now();
    const { failed, firstFailure } = await openMany(setUp, setUp.count, subscribers);
    const opened = subscribers.length - failed;
    const open = (await settleSubscriptions(url, metricsToken, baseline + opened, 30_000)) ?? baseline + opened;
    const openSeconds = (performance.now() - started) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = await memory();
    return {
      open: open - baseline,
      failed,
      ...(firstFailure === undefined ? {} : { firstFailure }),
      openSeconds,
      before,
      after,
    };
  } finally {
    await closeAll(subscribers);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// revocation → refusal (issue 15): the verifier package, connected to one instance's revocation feed, refusing a
// token whose session was logged out on the same instance or on another one sharing Redis; plus verify()
// throughput (bench/verify.ts) on the same set-up. `BENCH_ONLY=revocation,verify npm run bench` runs only these.

/** The parts benchVerifierPackage runs, by the names BENCH_ONLY takes. */
export const VERIFIER_SECTIONS: readonly string[] = ['revocation', 'verify'];
/** The verifier rows' target: p99 from logout's response to the first SESSION_REVOKED (issue 15). */
export const REFUSAL_TARGET_MS = 50;
/** How long a trial polls before counting its token as never refused. */
const REFUSAL_TIMEOUT_MS = 5000;
const LOGOUT = 'mutation { logout }';
const LOGIN_TOKEN = 'mutation($input: LoginInput!) { login(input: $input) { accessToken } }';

type PackageVerifier = Pick<TokenVerifier, 'verify' | 'status' | 'close'>;

export interface RefusalResult {
  /** ms from logout's response read to the first verify() that rejected with SESSION_REVOKED, in trial order. */
  readonly samples: number[];
  /** Trials refused by the very first verify() after the response. */
  readonly firstCall: number;
  /** Trials not refused within REFUSAL_TIMEOUT_MS. */
  readonly lost: number;
}

/** `count` fresh sessions (access tokens) of `accounts` in turn, signed in on `url`, `inFlight` at a time. */
export async function signInMany(
  url: string,
  accounts: readonly Account[],
  count: number,
  inFlight = 8,
): Promise<string[]> {
  const tokens = new Array<string>(count);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const account = accounts[i % accounts.length] as Account;
      const { login } = await gql<{ login: { accessToken: string } }>(url, LOGIN_TOKEN, {
        input: { email: account.email, password: PASSWORD },
      });
      tokens[i] = login.accessToken;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return tokens;
}

const reasonOf = (error: unknown) => (error as { reason?: unknown })?.reason;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Per token, one at a time: verify it (warm: accepted, now in the verifier's cache), `logout` with it on `logoutUrl`,
 * then from the moment the response has been read call verify(token) in a tight loop (one event-loop turn apart, so
 * the feed's socket is read in between) until it rejects with SESSION_REVOKED. The first `warmUp` are not recorded.
 */
export async function measureRefusal(
  verifier: PackageVerifier,
  logoutUrl: string,
  tokens: readonly string[],
  warmUp: number,
): Promise<RefusalResult> {
  const samples: number[] = [];
  let firstCall = 0;
  let lost = 0;
  for (const [i, token] of tokens.entries()) {
    await verifier.verify(token);
    const { logout } = await gql<{ logout: boolean }>(logoutUrl, LOGOUT, {}, { authorization: `Bearer ${token}` });
    const t0 = performance.now();
    if (!logout) throw new Error('logout returned false');
    let calls = 0;
    let t1: number | undefined;
    while (t1 === undefined && performance.now() - t0 < REFUSAL_TIMEOUT_MS) {
      calls++;
      try {
        await verifier.verify(token);
      } catch (error) {
        if (reasonOf(error) !== 'SESSION_REVOKED') throw error;
        t1 = performance.now();
        break;
      }
      await nextTurn();
    }
    if (i < warmUp) continue;
    if (t1 === undefined) lost++;
    else {
      samples.push(t1 - t0);
      if (calls === 1) firstCall++;
    }
    if (lost >= 5) throw new Error(`${lost} logged-out tokens were still accepted after ${REFUSAL_TIMEOUT_MS} ms`);
  }
  return { samples, firstCall, lost };
}

export interface Refusal {
  readonly result?: RefusalResult;
  readonly otherCpu?: number | undefined;
  /** Why there is no result. */
  readonly skipped?: string;
}

export interface VerifierPackageResults {
  readonly setUp: string;
  readonly trials: number;
  readonly warmUp: number;
  readonly sameInstance?: Refusal;
  readonly crossInstance?: Refusal;
  readonly throughput?: { readonly rows?: VerifyThroughputRow[]; readonly skipped?: string; readonly seconds: number };
  readonly notes: string[];
  /** Whether a part failed outright (not skipped for want of redis-server). */
  readonly failed: boolean;
}

export interface VerifierPackageOptions {
  /** A directory of the run's own, removed by the caller. */
  readonly dir: string;
  /** ISSUER, AUDIENCE and the rest shared with the run's other services. */
  readonly env: NodeJS.ProcessEnv;
  /** The services' signing key (PKCS#8 PEM, EdDSA). */
  readonly jwtPrivateKey: string;
  /** Which parts to run: 'revocation' (the two refusal rows) and 'verify' (throughput). */
  readonly sections: ReadonlySet<string>;
  readonly track: <T extends { readonly pid: number; stop(): Promise<void> }>(process: T) => T;
  readonly ownPids: () => number[];
  readonly log: (message: string) => void;
}

/** Trials per refusal row (BENCH_REFUSALS, at least 200 for the issue's figures). */
export const REFUSALS = Number(process.env.BENCH_REFUSALS ?? 200);
const REFUSAL_WARM_UP = 20;
const REFUSAL_ACCOUNTS = 10;
/** Seconds per side per verify() throughput row (BENCH_VERIFY_SECONDS). */
const VERIFY_SECONDS = Number(process.env.BENCH_VERIFY_SECONDS ?? 4);

/**
 * Starts Redis (when redis-server exists) and two instances sharing it and one SQLite file, a verifier on instance
 * 1's feed, then runs the sections asked for. Never throws for a failed row (it is reported); stops what it started.
 */
export async function benchVerifierPackage(options: VerifierPackageOptions): Promise<VerifierPackageResults> {
  const { log, sections } = options;
  const notes: string[] = [];
  const own: { readonly pid: number; stop(): Promise<void> }[] = [];
  const keep = <T extends { readonly pid: number; stop(): Promise<void> }>(process: T) => {
    own.push(process);
    return options.track(process);
  };
  let failed = false;
  const attempt = async <T>(name: string, run: () => Promise<T>): Promise<T | { skipped: string }> => {
    try {
      return await run();
    } catch (error) {
      failed = true;
      const why = error instanceof Error ? error.message : String(error);
      log(`${name} failed: ${why}`);
      return { skipped: `failed: ${why}` };
    }
  };
  const issuer = options.env.ISSUER as string;
  const audience = options.env.AUDIENCE as string;
  const trials = REFUSALS;
  let verifier: PackageVerifier | undefined;
  try {
    const binary = sections.has('revocation') ? findBinary('redis-server') : undefined;
    let redis: RunningService | undefined;
    if (sections.has('revocation') && !binary) notes.push('redis-server not found: no cross-instance refusal row.');
    if (binary) {
      log(`starting ${binary} for the verifier rows`);
      redis = keep(await startRedis());
    }
    const dir = join(options.dir, 'verifier');
    mkdirSync(dir, { recursive: true });
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
      RATE_LIMIT_REGISTER_IP: '1000000/1h',
      RATE_LIMIT_LOGIN_ACCOUNT: '1000000/15m',
      RATE_LIMIT_LOGIN_IP: '1000000/15m',
      RATE_LIMIT_CLIENT_TOKEN: '1000000/1m',
      RATE_LIMIT_CLIENT_TOKEN_IP: '1000000/1m',
    };
    const script = join(import.meta.dirname, 'service.ts');
    log(`starting ${redis ? 'two instances sharing one SQLite file and Redis' : 'one instance'} for the verifier`);
    // One at a time: the first applies the migrations.
    const one = keep(await startChild<{ url: string }>(script, env));
    const two = redis ? keep(await startChild<{ url: string }>(script, env)) : undefined;
    const urlOne = one.message.url;

    const feedClient = await one.ask<BenchClient>({ type: 'client', id: 'bench-feed', scopes: ['sessions:feed'] });
    // The package as a service installs it: its built dist (npm run build -w graphql-auth-verifier), loaded only
    // here so that the rest of the bench runs without it.
    const { createTokenVerifier } = await import('graphql-auth-verifier');
    verifier = createTokenVerifier({
      issuer,
      audience,
      graphqlUrl: `${urlOne}/graphql`,
      clientId: feedClient.id,
      clientSecret: feedClient.secret,
    });
    const accounts = await registerAccounts(urlOne, 'verifier', REFUSAL_ACCOUNTS);
    // verify waits for the feed's first revocation list: the verifier is live once this resolves.
    await verifier.verify((accounts[0] as Account).accessToken);
    if (!verifier.status().connected) throw new Error('the verifier is not connected to the feed');

    const refusal = async (name: string, logoutUrl: string): Promise<Refusal> => {
      log(`${name}: ${REFUSAL_WARM_UP} + ${trials} logouts, verifier on instance 1's feed`);
      return attempt(name, async () => {
        const tokens = await signInMany(logoutUrl, accounts, REFUSAL_WARM_UP + trials);
        const otherCpu = meterOtherCpu(options.ownPids);
        const result = await measureRefusal(verifier as PackageVerifier, logoutUrl, tokens, REFUSAL_WARM_UP);
        return { result, otherCpu: otherCpu() };
      });
    };
    const sameInstance = sections.has('revocation')
      ? await refusal('revocation → refusal, same instance', urlOne)
      : undefined;
    const crossInstance = !sections.has('revocation')
      ? undefined
      : two
        ? await refusal('revocation → refusal, cross-instance', two.message.url)
        : { skipped: 'skipped: no Redis' };

    let throughput: VerifierPackageResults['throughput'];
    if (sections.has('verify')) {
      const measured = await attempt('verify() throughput', async () => {
        const response = await fetch(`${urlOne}/.well-known/jwks.json`);
        if (!response.ok) throw new Error(`JWKS: HTTP ${response.status}`);
        const [token] = await signInMany(urlOne, accounts, 1);
        return measureVerifyThroughput({
          verify: (t) => (verifier as PackageVerifier).verify(t),
          jwks: (await response.json()) as JSONWebKeySet,
          issuer,
          audience,
          token: token as string,
          privateKey: options.jwtPrivateKey,
          seconds: VERIFY_SECONDS,
          distinct: [1000, 12_000],
          log,
        });
      });
      throughput = { seconds: VERIFY_SECONDS, ...('skipped' in measured ? measured : { rows: measured }) };
    }
    return {
      setUp: redis ? 'two instances sharing one SQLite file and one Redis' : 'one instance, no Redis',
      trials,
      warmUp: REFUSAL_WARM_UP,
      ...(sameInstance ? { sameInstance } : {}),
      ...(crossInstance ? { crossInstance } : {}),
      ...(throughput ? { throughput } : {}),
      notes,
      failed,
    };
  } finally {
    verifier?.close();
    await Promise.all(own.map((process) => process.stop()));
  }
}

/** Prints the refusal table (with the target) and the verify() throughput table, whichever were run. */
export function printVerifierPackage(results: VerifierPackageResults): void {
  const fixed = (n: number) => (Math.abs(n) < 10 ? n.toFixed(2) : n.toFixed(1));
  // Nearest rank, as the rest of the bench.
  const quantile = (sorted: number[], q: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const rows: string[][] = [];
  const row = (name: string, refusal: Refusal | undefined) => {
    if (!refusal) return;
    const { result, otherCpu, skipped } = refusal;
    if (!result) {
      rows.push([name, skipped ?? '', '', '', '', '', '', '']);
      return;
    }
    const sorted = [...result.samples].sort((a, b) => a - b);
    const p99 = quantile(sorted, 0.99);
    rows.push([
      name,
      fixed(quantile(sorted, 0.5)),
      fixed(p99),
      sorted.length ? fixed(sorted.at(-1) as number) : '',
      `${result.firstCall} of ${sorted.length}`,
      String(result.lost),
      otherCpu === undefined ? '?' : `${(100 * otherCpu).toFixed(0)}%`,
      `p99 < ${REFUSAL_TARGET_MS} ms: ${p99 < REFUSAL_TARGET_MS && result.lost === 0 && sorted.length > 0 ? 'MET' : 'NOT MET'}`,
    ]);
  };
  row('same instance (feed on 1, logout on 1)', results.sameInstance);
  row('cross-instance (feed on 1, logout on 2, via Redis)', results.crossInstance);
  if (rows.length > 0) {
    console.log(
      `\nrevocation → refusal: logout's HTTP response read → first graphql-auth-verifier verify(token) that rejects ` +
        `with SESSION_REVOKED (polled one event-loop turn apart), ms; ${results.trials} logouts each after ` +
        `${results.warmUp} warm-up, one at a time; ${results.setUp}, bcrypt cost 4\n`,
    );
    const header = ['set-up', 'p50 ms', 'p99 ms', 'max ms', 'refused at 1st call', 'lost', 'other CPU', 'target'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const line = (r: string[]) => `| ${r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')} |`;
    console.log([line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n'));
    console.log(
      `\n'refused at 1st call': the first verify() after the response already refused (the event came first). ` +
        `'lost': still accepted ${REFUSAL_TIMEOUT_MS / 1000} s after the response.`,
    );
  }
  const { throughput } = results;
  if (throughput?.rows) printVerifyThroughput(throughput.rows, throughput.seconds);
  else if (throughput) console.log(`\nverify() throughput: ${throughput.skipped ?? ''}`);
  for (const note of results.notes) console.log(`\nnote: ${note}`);
}
