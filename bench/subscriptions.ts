// graphql-ws clients for the bench (ws's WebSocket): one socket per subscription to sessionRevoked, with the
// arrival time of each event, plus the server's own count of open subscriptions to know when they are established.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const SESSION_REVOKED = 'subscription { sessionRevoked { sessionId } }';

export interface Subscriber {
  /** Resolves once the server acknowledged connection_init (the subscribe message follows at once). */
  readonly connected: Promise<void>;
  /** Resolves with why once the socket or the subscription failed (never for a clean dispose). */
  readonly failed: Promise<string>;
  /** performance.now() when the event for `sessionId` arrived, waiting at most `timeoutMs`; undefined if it never did. */
  arrival(sessionId: string, timeoutMs: number): Promise<number | undefined>;
  dispose(): Promise<void>;
}

/** Opens a socket authenticated with `accessToken` and subscribes to sessionRevoked on it. */
export function subscribeSessionRevoked(baseUrl: string, accessToken: string): Subscriber {
  const arrivals = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  let disposed = false;
  let fail: (reason: string) => void = () => {};
  const failed = new Promise<string>((resolve) => {
    fail = (reason) => {
      if (!disposed) resolve(reason);
    };
  });
  let connect: () => void = () => {};
  const connected = new Promise<void>((resolve) => {
    connect = resolve;
  });
  const client = createClient({
    url: `${baseUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${accessToken}` },
    lazy: false,
    retryAttempts: 0,
    onNonLazyError: (error) => fail(describe(error)),
    on: {
      connected: () => connect(),
      closed: (event) => fail(describe(event)),
    },
  });
  client.subscribe<{ sessionRevoked: { sessionId: string } }>(
    { query: SESSION_REVOKED },
    {
      next: (result) => {
        const at = performance.now();
        const sessionId = result.data?.sessionRevoked.sessionId;
        if (!sessionId) return fail(`event without data: ${JSON.stringify(result.errors ?? result)}`);
        arrivals.set(sessionId, at);
        waiters.get(sessionId)?.();
      },
      error: (error) => fail(describe(error)),
      complete: () => fail('the subscription completed'),
    },
  );
  return {
    connected,
    failed,
    arrival(sessionId, timeoutMs) {
      const at = arrivals.get(sessionId);
      if (at !== undefined) return Promise.resolve(at);
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(sessionId);
          resolve(arrivals.get(sessionId));
        };
        const timer = setTimeout(done, timeoutMs);
        waiters.set(sessionId, done);
      });
    },
    async dispose() {
      disposed = true;
      await client.dispose();
    },
  };
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  const close = error as { code?: unknown; reason?: unknown; message?: unknown } | null;
  if (typeof close?.code === 'number') return `socket closed ${close.code} ${String(close.reason ?? '')}`.trim();
  if (typeof close?.message === 'string') return close.message;
  return JSON.stringify(error);
}

/** The graphql_ws_subscriptions_open gauge of the instance at `url`, or undefined when it does not publish it. */
export async function openSubscriptions(url: string, metricsToken: string): Promise<number | undefined> {
  const response = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
  const match = /^graphql_ws_subscriptions_open (\S+)$/m.exec(await response.text());
  return response.ok && match ? Number(match[1]) : undefined;
}

/**
 * Waits until the instance reports `expected` open subscriptions (or `timeoutMs` passes) and returns its last count.
 * Without the gauge it can only wait a moment and return undefined.
 */
export async function settleSubscriptions(
  url: string,
  metricsToken: string,
  expected: number,
  timeoutMs: number,
): Promise<number | undefined> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const open = await openSubscriptions(url, metricsToken);
    if (open === undefined) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      return undefined;
    }
    if (open === expected || performance.now() > deadline) return open;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
