// Revocation latency (revokeSession's HTTP response → the sessionRevoked event on a graphql-ws client) and the
// memory an idle sessionRevoked subscription costs the service.
import { readFileSync } from 'node:fs';
import type { Child } from './children.ts';
import { gql } from './load.ts';
import type { MemoryReport } from './service.ts';
import { type Subscriber, settleSubscriptions, subscribeSessionRevoked } from './subscriptions.ts';

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
