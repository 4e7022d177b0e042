// The Prometheus metrics of one app: its own Registry (never prom-client's global one), default process metrics
// (event-loop lag included), and the counters the transport feeds. Domain code never sees prom-client.

import { readFileSync } from 'node:fs';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { PoolFigures } from '../db/pool-figures.ts';
import type { SessionRevokedEvent } from '../events/revocation-bus.ts';
import type { MailKind } from '../mail/mailer.ts';
import type { SignInKind } from '../schema/marks.ts';

export type OperationType = 'query' | 'mutation' | 'subscription';

/** Distinct operation names kept as label values; later ones share `__other` so clients cannot grow the registry. */
const MAX_OPERATION_NAMES = 200;
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface Metrics {
  readonly registry: Registry;
  observeHttp(method: string, route: string, status: number, seconds: number): void;
  observeOperation(name: string | undefined, type: OperationType, outcome: 'success' | 'error', seconds?: number): void;
  /** `outcome` is "success" or the error's code (or, for refresh, its reason). */
  countSignIn(kind: SignInKind, outcome: string): void;
  countRevocation(event: SessionRevokedEvent): void;
  /** +1 when a WebSocket subscription starts, -1 when it ends. */
  subscriptionsChanged(delta: 1 | -1): void;
  /** +1 when a revocation-feed subscription opens, -1 when it ends (auth_revocation_feed_consumers). */
  feedConsumersChanged(delta: 1 | -1): void;
  /** Revocations sent to feed subscribers (auth_revocation_feed_events_total). */
  countFeedEvents(count: number): void;
  /** A mail of this kind could not be sent (auth_mail_failures_total). */
  countMailFailure(kind: MailKind): void;
  /** Serves the database pool's figures (auth_db_pool_*), read at each scrape, when the database has a pool. */
  watchDatabasePool(read: () => PoolFigures | undefined): void;
  /** Serves auth_redis_up (1 or 0, read from `isUp` at each scrape) when the app uses Redis. */
  watchRedis(isUp: () => boolean): void;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const httpRequests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests, by method, route and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers,
  });
  const httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency, by method, route and status.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: BUCKETS,
    registers,
  });
  const operations = new Counter({
    name: 'graphql_operations_total',
    help: 'GraphQL operations executed, by operation name, type and outcome (error: the result carries errors).',
    labelNames: ['operation', 'type', 'outcome'] as const,
    registers,
  });
  const operationDuration = new Histogram({
    name: 'graphql_operation_duration_seconds',
    help: 'GraphQL execution latency (queries and mutations), by operation name and type.',
    labelNames: ['operation', 'type'] as const,
    buckets: BUCKETS,
    registers,
  });
  const logins = new Counter({
    name: 'auth_logins_total',
    help: 'Sign-ins (login, OAuth, passkey, the MFA step), by method and outcome: success or the error code.',
    labelNames: ['method', 'outcome'] as const,
    registers,
  });
  const registrations = new Counter({
    name: 'auth_registrations_total',
    help: 'Registrations, by outcome: success or the error code.',
    labelNames: ['outcome'] as const,
    registers,
  });
  const refreshes = new Counter({
    name: 'auth_refreshes_total',
    help: 'Refresh-token rotations, by outcome: success or the reason (e.g. REFRESH_TOKEN_ROTATED) or code.',
    labelNames: ['outcome'] as const,
    registers,
  });
  const revocations = new Counter({
    name: 'auth_revocations_total',
    help: 'Sessions revoked by this instance, by reason.',
    labelNames: ['reason'] as const,
    registers,
  });
  const subscriptions = new Gauge({
    name: 'graphql_ws_subscriptions_open',
    help: 'GraphQL subscriptions currently open over WebSocket on this instance.',
    registers,
  });
  const feedConsumers = new Gauge({
    name: 'auth_revocation_feed_consumers',
    help: 'Revocation-feed subscriptions (Subscription.revocations, WebSocket or SSE) open on this instance.',
    registers,
  });
  const feedEvents = new Counter({
    name: 'auth_revocation_feed_events_total',
    help: 'Revocations sent to revocation-feed subscribers by this instance (one per subscriber told).',
    registers,
  });

  const mailFailures = new Counter({
    name: 'auth_mail_failures_total',
    help: 'Mails that could not be handed to the mail server (or the development outbox), by kind.',
    labelNames: ['kind'] as const,
    registers,
  });
  const buildInfo = new Gauge({
    name: 'auth_build_info',
    help: 'Always 1; the labels say which build of the service and which Node.js runs this instance.',
    labelNames: ['version', 'node_version'] as const,
    registers,
  });
  buildInfo.set({ version: serviceVersion(), node_version: process.versions.node }, 1);

  const names = new Set<string>();
  const operationLabel = (name: string | undefined) => {
    if (!name) return 'anonymous';
    if (names.has(name)) return name;
    if (names.size >= MAX_OPERATION_NAMES) return '__other';
    names.add(name);
    return name;
  };

  return {
    registry,
    observeHttp(method, route, status, seconds) {
      const labels = { method, route, status: String(status) };
      httpRequests.inc(labels);
      httpDuration.observe(labels, seconds);
    },
    observeOperation(name, type, outcome, seconds) {
      const operation = operationLabel(name);
      operations.inc({ operation, type, outcome });
      if (seconds !== undefined) operationDuration.observe({ operation, type }, seconds);
    },
    countSignIn(kind, outcome) {
      switch (kind) {
        case 'register':
          return registrations.inc({ outcome });
        case 'refresh':
          return refreshes.inc({ outcome });
        case 'login':
          return logins.inc({ method: 'password', outcome });
        case 'oauth':
          return logins.inc({ method: 'oauth', outcome });
        case 'passkey':
          return logins.inc({ method: 'passkey', outcome });
        case 'mfa':
          return logins.inc({ method: 'mfa', outcome });
        default: {
          // A new kind of sign-in must say here how it is counted.
          const unknown: never = kind;
          throw new Error(`no metric for sign-in kind ${String(unknown)}`);
        }
      }
    },
    countRevocation(event) {
      revocations.inc({ reason: event.reason }, event.sessionIds.length);
    },
    subscriptionsChanged(delta) {
      subscriptions.inc(delta);
    },
    feedConsumersChanged(delta) {
      feedConsumers.inc(delta);
    },
    countFeedEvents(count) {
      feedEvents.inc(count);
    },
    countMailFailure(kind) {
      mailFailures.inc({ kind });
    },
    watchDatabasePool(read) {
      const figure = (name: string, help: string, pick: (figures: PoolFigures) => number) =>
        new Gauge({
          name,
          help,
          registers,
          collect() {
            const figures = read();
            if (figures) this.set(pick(figures));
          },
        });
      figure('auth_db_pool_connections_open', 'Database connections open in the pool, idle or in use.', (f) => f.open);
      figure('auth_db_pool_connections_idle', 'Database connections open and idle in the pool.', (f) => f.idle);
      figure('auth_db_pool_requests_waiting', 'Queries waiting for a free database connection.', (f) => f.waiting);
      figure('auth_db_pool_connections_max', 'The most connections the database pool opens.', (f) => f.max);
    },
    watchRedis(isUp) {
      new Gauge({
        name: 'auth_redis_up',
        help: 'Whether both Redis connections (commands, pub/sub) of this instance are ready: 1 or 0.',
        registers,
        collect() {
          this.set(isUp() ? 1 : 0);
        },
      });
    },
  };
}

/** The version in the service's package.json (read once per app, when its metrics are made). */
function serviceVersion(): string {
  try {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    return typeof manifest.version === 'string' ? manifest.version : 'unknown';
  } catch {
    return 'unknown';
  }
}
