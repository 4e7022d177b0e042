// A real graphql-ws client for tests: subscribe, collect events, see how the socket closed.
import { type Client, createClient } from 'graphql-ws';

export interface Subscription<T> {
  /** Events received so far. */
  readonly events: T[];
  /** Resolves with the n-th event (1-based) once it has arrived. */
  next(n?: number, timeoutMs?: number): Promise<T>;
  /** Resolves when the server completes the subscription. */
  readonly completed: Promise<void>;
  /** Resolves with the close code once the socket closes. */
  readonly closed: Promise<number>;
  /** Errors the server answered the subscription with. */
  readonly errors: unknown[];
  dispose(): Promise<void>;
}

export function wsUrl(baseUrl: string) {
  return `${baseUrl.replace(/^http/, 'ws')}/graphql`;
}

export function openClient(baseUrl: string, token?: string): { client: Client; closed: Promise<number> } {
  let onClosed: (code: number) => void = () => {};
  const closed = new Promise<number>((resolve) => {
    onClosed = resolve;
  });
  const client = createClient({
    url: wsUrl(baseUrl),
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: false,
    onNonLazyError: () => {},
    on: { closed: (event) => onClosed((event as CloseEvent).code) },
  });
  return { client, closed };
}

export function subscribe<T = Record<string, any>>(baseUrl: string, query: string, token?: string): Subscription<T> {
  const { client, closed } = openClient(baseUrl, token);
  const events: T[] = [];
  const errors: unknown[] = [];
  const waiters: (() => void)[] = [];
  let complete: () => void = () => {};
  const completed = new Promise<void>((resolve) => {
    complete = resolve;
  });
  client.subscribe<T>(
    { query },
    {
      next: (result) => {
        if (result.errors) errors.push(...result.errors);
        if (result.data) events.push(result.data as T);
        for (const wake of waiters.splice(0)) wake();
      },
      error: (error) => {
        errors.push(error);
        complete();
        for (const wake of waiters.splice(0)) wake();
      },
      complete: () => complete(),
    },
  );
  return {
    events,
    errors,
    completed,
    closed,
    async next(n = events.length + 1, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (events.length < n) {
        if (Date.now() > deadline)
          throw new Error(`timed out waiting for event ${n}; errors: ${JSON.stringify(errors)}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
      return events[n - 1] as T;
    },
    dispose: async () => {
      await client.dispose();
    },
  };
}

/** Waits until `check` passes or the time runs out (for effects on another instance). */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
