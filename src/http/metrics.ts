// The Prometheus metrics of one app: its own Registry (never prom-client's global one), default process metrics
// (event-loop lag included), and the counters the transport feeds. Domain code never sees prom-client.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { SessionRevokedEvent } from '../events/revocation-bus.ts';
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
    help: 'Sign-ins (login, OAuth login), by method and outcome: success or the error code.',
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
