// The revocation feed: a client-credentials token (RFC 6749 §4.4, renewed before it expires), a graphql-ws
// connection that subscribes to `revocations` first and then reads the list (the order that loses nothing), and
// reconnection with exponential back-off and jitter. It tells the verifier when revocations are current.
import { createClient } from 'graphql-ws/client';
import type { Revocation, RevocationList } from './revocations.ts';

const FIELDS = 'sessionId clientId userId reason revokedAt tokensExpireBy';
const SUBSCRIPTION = `subscription VerifierRevocations { revocations { ${FIELDS} } }`;
const QUERY = `query VerifierRevocations { revocations { ${FIELDS} } }`;

/** Back-off between attempts: 250 ms doubling up to 10 s, each wait a random part of it ("full jitter"). */
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 10_000;
/** Ping the server this often; a connection whose pong is this late is dropped and reconnected. */
const KEEP_ALIVE_MS = 5_000;
const PONG_TIMEOUT_MS = 3_000;
/** A token is renewed when this share of its life has passed (the server closes a socket when its token expires). */
const RENEW_AT = 0.75;

/** Where the feed connects and how it authenticates (from the verifier's options). */
export interface FeedSettings {
  readonly graphqlUrl: string;
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly fetch: typeof globalThis.fetch;
  readonly webSocketImpl: unknown;
  readonly now: () => number;
}

interface FeedToken {
  readonly value: string;
  /** Milliseconds since the epoch. */
  readonly renewAt: number;
}

/** Why the feed is not connected, for `status()` (never holds a secret). */
export class FeedError extends Error {
  override name = 'FeedError';
}

/** One live connection: resolves `opened` once subscribed and the list is read. */
interface Connection {
  readonly closed: Promise<number | undefined>;
  readonly isOpen: () => boolean;
  dispose(): void;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

const wsUrlOf = (graphqlUrl: string): string => {
  const url = new URL(graphqlUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
};

/** RFC 6749 §2.3.1: the id and secret are form-encoded before they are joined and base64-encoded. */
const basicAuthorization = (clientId: string, secret: string): string => {
  const form = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  const bytes = new TextEncoder().encode(`${form(clientId)}:${form(secret)}`);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return `Basic ${btoa(binary)}`;
};

/**
 * Keeps `list` current from the server's feed until `close()`: `live` while connected with the list read since the
 * connection opened; `stalenessMs()` since when it is not. Starts connecting when constructed.
 */
export class RevocationFeed {
  readonly #settings: FeedSettings;
  readonly #list: RevocationList;
  readonly #abort = new AbortController();
  #token: FeedToken | undefined;
  #current: Connection | undefined;
  #live = false;
  #everLive = false;
  /** Since when revocations are not known to be current (the start, or the last disconnection). */
  #staleSince: number;
  #lastError: string | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(settings: FeedSettings, list: RevocationList) {
    this.#settings = settings;
    this.#list = list;
    this.#staleSince = settings.now();
    void this.#run();
  }

  /** True while connected with the list read since the connection opened. */
  get live(): boolean {
    return this.#live;
  }

  /** Whether the list has ever been read (before that, a verifier waits instead of using an empty set). */
  get everLive(): boolean {
    return this.#everLive;
  }

  /** Milliseconds since revocations were last known to be current; 0 while live. */
  stalenessMs(): number {
    return this.#live ? 0 : this.#settings.now() - this.#staleSince;
  }

  /** Why the last attempt failed, if it did (for logs and status; never a secret). */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Resolves when the feed becomes live, or after `ms`, or when the feed is closed. */
  whenLive(ms: number): Promise<void> {
    if (this.#live || this.#abort.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.#waiters.add(done);
    });
  }

  get closed(): boolean {
    return this.#abort.signal.aborted;
  }

  close(): void {
    this.#abort.abort();
    this.#current?.dispose();
    this.#current = undefined;
    this.#setLive(false);
    for (const wake of [...this.#waiters]) wake();
  }

  #setLive(live: boolean): void {
    if (live === this.#live) return;
    this.#live = live;
    if (live) {
      this.#everLive = true;
      this.#lastError = undefined;
      for (const wake of [...this.#waiters]) wake();
    } else {
      this.#staleSince = this.#settings.now();
    }
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const token = await this.#getToken();
        const connection = await this.#open(token.value);
        if (signal.aborted) {
          connection.dispose();
          return;
        }
        // Make before break: on renewal the old connection stays until the new one has read the list.
        this.#current?.dispose();
        this.#current = connection;
        this.#setLive(true);
        failures = 0;
        const renewal = new AbortController();
        const stop = () => renewal.abort();
        signal.addEventListener('abort', stop, { once: true });
        const ended = await Promise.race([
          connection.closed.then((code) => ({ code })),
          sleep(token.renewAt - this.#settings.now(), renewal.signal).then(() => undefined),
        ]);
        renewal.abort();
        signal.removeEventListener('abort', stop);
        if (ended) {
          if (this.#current === connection) {
            this.#current = undefined;
            this.#setLive(false);
          }
          // 4401/4403: the token was refused or expired; anything else may be a restart: reconnect either way.
          if (ended.code === 4401 || ended.code === 4403) this.#token = undefined;
          this.#lastError = `connection closed (${ended.code ?? 'no code'})`;
          failures++;
        } else {
          this.#token = undefined;
          continue;
        }
      } catch (error) {
        this.#lastError = error instanceof Error ? error.message : String(error);
        failures++;
      }
      if (signal.aborted) return;
      // A failure while a still-open connection serves (a renewal that failed) keeps it until it closes.
      const current = this.#current;
      const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(failures - 1, 10));
      const wait = sleep(Math.random() * cap, signal);
      await (current?.isOpen() ? Promise.all([wait, sleep(Math.min(cap, 1000), signal)]) : wait);
    }
  }

  async #getToken(): Promise<FeedToken> {
    const now = this.#settings.now();
    if (this.#token && this.#token.renewAt > now) return this.#token;
    const { tokenUrl, clientId, clientSecret } = this.#settings;
    const response = await this.#settings.fetch(tokenUrl, {
      method: 'POST',
      headers: {
        authorization: basicAuthorization(clientId, clientSecret),
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: 'grant_type=client_credentials&scope=sessions%3Afeed',
      signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(10_000)]),
    });
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (!response.ok || typeof body.access_token !== 'string') {
      // Only the OAuth error code (RFC 6749 §5.2), never the body: nothing the server said reaches a log verbatim.
      const code = typeof body.error === 'string' && /^[a-z_]{1,40}$/.test(body.error) ? body.error : 'no error code';
      throw new FeedError(`token request refused: HTTP ${response.status} (${code})`);
    }
    const lifetimeMs = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in * 1000 : 60_000;
    this.#token = { value: body.access_token, renewAt: now + lifetimeMs * RENEW_AT };
    return this.#token;
  }

  /** Connects, subscribes, then reads the list; resolves once all three are done, rejects if any fails. */
  #open(token: string): Promise<Connection> {
    let onClosed: (code: number | undefined) => void = () => {};
    const closed = new Promise<number | undefined>((resolve) => {
      onClosed = resolve;
    });
    let open = true;
    let pongTimer: ReturnType<typeof setTimeout> | undefined;
    let socket: { close(code?: number, reason?: string): void } | undefined;
    const client = createClient({
      url: wsUrlOf(this.#settings.graphqlUrl),
      webSocketImpl: this.#settings.webSocketImpl,
      connectionParams: { authorization: `Bearer ${token}` },
      lazy: true,
      retryAttempts: 0,
      keepAlive: KEEP_ALIVE_MS,
      connectionAckWaitTimeout: 10_000,
      on: {
        connected: (ws) => {
          socket = ws as typeof socket;
        },
        ping: (received) => {
          // A server that stops answering (a network black hole) is dropped instead of trusted forever.
          if (!received) pongTimer = setTimeout(() => socket?.close(4408, 'Pong timeout'), PONG_TIMEOUT_MS);
        },
        pong: (received) => {
          if (received) clearTimeout(pongTimer);
        },
        closed: (event) => {
          clearTimeout(pongTimer);
          open = false;
          onClosed((event as { code?: number } | undefined)?.code);
        },
      },
    });
    const connection: Connection = {
      closed,
      isOpen: () => open,
      dispose: () => {
        open = false;
        clearTimeout(pongTimer);
        void client.dispose();
        onClosed(1000);
      },
    };
    let resolve: (value: Connection) => void = () => {};
    let reject: (error: Error) => void = () => {};
    const opened = new Promise<Connection>((yes, no) => {
      resolve = yes;
      reject = no;
    });
    const fail = (error: unknown) => {
      connection.dispose();
      reject(error instanceof Error ? error : new FeedError(describe(error)));
    };
    // Subscribe first, then read the list, on the same socket: whatever is revoked between the two arrives
    // through the subscription, and everything before through the list.
    client.subscribe<{ revocations: Revocation }>(
      { query: SUBSCRIPTION },
      {
        next: (result) => {
          if (result.data?.revocations) this.#list.add(result.data.revocations);
          else if (result.errors) fail(new FeedError(`subscription refused: ${codesOf(result.errors)}`));
        },
        error: (error) => fail(error),
        // The server completes a feed subscription when its token expires or is refused (its client disabled, its
        // secret rotated): this connection no longer serves, and its token is not to be used again.
        complete: () => {
          if (open && this.#token?.value === token) this.#token = undefined;
          connection.dispose();
        },
      },
    );
    client.subscribe<{ revocations: Revocation[] }>(
      { query: QUERY },
      {
        next: (result) => {
          const list = result.data?.revocations;
          if (!list) return fail(new FeedError(`revocations query refused: ${codesOf(result.errors)}`));
          for (const revocation of list) this.#list.add(revocation);
          this.#list.prune();
          resolve(connection);
        },
        error: (error) => fail(error),
        complete: () => {},
      },
    );
    void closed.then((code) => {
      // A connection that closes before its list is read fails the attempt; one that was current goes stale.
      reject(new FeedError(`connection closed (${code ?? 'no code'})`));
      if (this.#current === connection) {
        this.#current = undefined;
        this.#setLive(false);
      }
    });
    return opened;
  }
}

const codesOf = (errors: readonly { extensions?: Record<string, unknown> }[] | undefined): string =>
  (errors ?? []).map((error) => String(error.extensions?.code ?? 'error')).join(', ') || 'no data';

const describe = (error: unknown): string => {
  if (Array.isArray(error)) return `refused: ${codesOf(error)}`;
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'number' ? `connection closed (${code})` : 'connection failed';
};
