// The typed client SDK (browsers and Node): signs in, keeps the tokens, refreshes them before they expire
// (one refresh in flight, shared by every caller), retries an operation once after a refresh, and signs out
// when its session is revoked (heard through the sessionRevoked subscription). apollo.ts and urql.ts build on it.
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { type DocumentNode, print } from 'graphql';
import { createClient, type Client as WsClient } from 'graphql-ws';
// The server's vocabulary of `extensions.reason` (API.md, "Reasons"); a type only, so nothing server-side is loaded.
import type { UnauthenticatedReason } from '../errors.ts';
import {
  LoginDocument,
  type LoginInput,
  LogoutDocument,
  RefreshDocument,
  RegisterDocument,
  type RegisterInput,
  SessionRevokedDocument,
  type SignedInFragment,
} from './generated/graphql.ts';

export type { UnauthenticatedReason } from '../errors.ts';
export type { LoginInput, RegisterInput, SignedInFragment } from './generated/graphql.ts';
export * as operations from './generated/graphql.ts';

/** What the client keeps between calls (and in its storage): a session's tokens. */
export interface AuthTokens {
  readonly accessToken: string;
  /** ISO 8601. */
  readonly accessTokenExpiresAt: string;
  readonly refreshToken: string;
  readonly refreshTokenExpiresAt: string;
  readonly userId: string;
  readonly sessionId: string;
  /** When this client received the access token (ms since the epoch): with the expiry, its lifetime. */
  readonly receivedAt: number;
}

/** Where tokens live besides memory (e.g. localStorage, a file, a keychain); may be async. */
export interface TokenStorage {
  load(): AuthTokens | null | Promise<AuthTokens | null>;
  save(tokens: AuthTokens): void | Promise<void>;
  clear(): void | Promise<void>;
}

/** Keeps tokens in memory only: lost on reload, never readable by other code. The default. */
export function memoryStorage(): TokenStorage {
  let saved: AuthTokens | null = null;
  return {
    load: () => saved,
    save: (tokens) => {
      saved = tokens;
    },
    clear: () => {
      saved = null;
    },
  };
}

/** Keeps tokens in a Web Storage area (localStorage, sessionStorage) under `key`. */
export function webStorage(storage: Storage, key = 'auth.tokens'): TokenStorage {
  return {
    load: () => {
      const value = storage.getItem(key);
      try {
        return value ? (JSON.parse(value) as AuthTokens) : null;
      } catch {
        return null;
      }
    },
    save: (tokens) => storage.setItem(key, JSON.stringify(tokens)),
    clear: () => storage.removeItem(key),
  };
}

export interface GraphQLErrorLike {
  readonly message: string;
  readonly path?: readonly (string | number)[];
  readonly extensions?: Record<string, unknown>;
}

/** A GraphQL error answer, with its `extensions.code` and (for UNAUTHENTICATED) `extensions.reason`. */
export class AuthClientError extends Error {
  override name = 'AuthClientError';
  readonly code: string;
  /** The `extensions.reason` of an UNAUTHENTICATED answer (one of UnauthenticatedReason). */
  readonly reason: UnauthenticatedReason | undefined;
  readonly errors: readonly GraphQLErrorLike[];

  constructor(errors: readonly GraphQLErrorLike[]) {
    const first = errors[0];
    super(first?.message ?? 'GraphQL request failed');
    this.errors = errors;
    this.code = typeof first?.extensions?.code === 'string' ? first.extensions.code : 'INTERNAL_SERVER_ERROR';
    this.reason =
      typeof first?.extensions?.reason === 'string' ? (first.extensions.reason as UnauthenticatedReason) : undefined;
  }
}

/** UNAUTHENTICATED reasons after which this session cannot go on: sign in again. */
const SIGN_OUT_REASONS: ReadonlySet<string> = new Set<UnauthenticatedReason>([
  'REFRESH_TOKEN_REUSE',
  'SESSION_REVOKED',
  'INVALID_REFRESH_TOKEN',
  'REFRESH_TOKEN_EXPIRED',
  'INVALID_TOKEN',
  'CLIENT_DISABLED',
  'ACCOUNT_DISABLED',
]);

/** The `extensions.reason` of an UNAUTHENTICATED error among `errors`, if there is one. */
export function unauthenticatedReason(errors: readonly GraphQLErrorLike[] | undefined): string | undefined {
  const error = errors?.find((e) => e.extensions?.code === 'UNAUTHENTICATED');
  if (!error) return undefined;
  return typeof error.extensions?.reason === 'string' ? error.extensions.reason : 'UNAUTHENTICATED';
}

export interface SignedOutEvent {
  /** LOGOUT for `logout()`, otherwise the reason the session ended (e.g. SESSION_REVOKED, REVOKED_BY_USER). */
  readonly reason: string;
  readonly sessionId: string;
}

export interface AuthClientEvents {
  /** New tokens: after sign-in and after every refresh. */
  tokens: (tokens: AuthTokens) => void;
  signedOut: (event: SignedOutEvent) => void;
}

export interface AuthClientOptions {
  /** The GraphQL endpoint, e.g. https://auth.example.com/graphql. */
  readonly url: string;
  /** The WebSocket endpoint; defaults to `url` with ws(s)://. */
  readonly wsUrl?: string;
  /** Defaults to the global fetch. */
  readonly fetch?: typeof fetch;
  /** Defaults to the global WebSocket (browsers, Node 22+). */
  readonly webSocketImpl?: unknown;
  /** Defaults to memory only. */
  readonly storage?: TokenStorage;
  /** Refresh this long before the access token expires (default 30 s; at most a fifth of its lifetime). */
  readonly refreshMarginMs?: number;
  /** Subscribe to sessionRevoked while signed in, and sign out when this session is revoked (default true). */
  readonly watchRevocation?: boolean;
  /** Milliseconds since the epoch; for tests. */
  readonly now?: () => number;
}

export interface AuthClient {
  /** The current tokens, or null when signed out. */
  readonly tokens: AuthTokens | null;
  register(input: RegisterInput): Promise<SignedInFragment>;
  login(input: LoginInput): Promise<SignedInFragment>;
  /** Revokes this session on the server (best effort) and signs out. */
  logout(): Promise<void>;
  /** Loads tokens from the storage (e.g. after a page reload); null when there are none. */
  restore(): Promise<AuthTokens | null>;
  /** Rotates the refresh token now. Concurrent calls share one request. */
  refresh(): Promise<AuthTokens>;
  /** A valid access token (refreshed first when it is about to expire), or null when signed out. */
  accessToken(): Promise<string | null>;
  /**
   * After an UNAUTHENTICATED answer to a request made with `usedToken`: the token to retry with (refreshed once
   * for TOKEN_EXPIRED, shared with concurrent callers), or null (and, when the session is over, signed out).
   */
  recover(reason: string, usedToken: string): Promise<string | null>;
  /** Runs an operation with the access token; refreshes and retries once on TOKEN_EXPIRED. */
  request<TResult, TVariables extends Record<string, unknown>>(
    document: TypedDocumentNode<TResult, TVariables>,
    variables?: TVariables,
  ): Promise<TResult>;
  /** fetch with the bearer token, retried once after a refresh when a GraphQL answer says TOKEN_EXPIRED. */
  readonly fetch: typeof fetch;
  on<E extends keyof AuthClientEvents>(event: E, listener: AuthClientEvents[E]): () => void;
  /** Forgets the tokens locally (no server call) and emits signedOut. */
  signOut(reason: string): Promise<void>;
  /** Stops the revocation watch; the tokens stay. */
  dispose(): Promise<void>;
}

interface GraphQLResult<T> {
  data?: T | null;
  errors?: GraphQLErrorLike[];
}

/** Creates a client for one auth server. */
export function createAuthClient(options: AuthClientOptions): AuthClient {
  const baseFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const storage = options.storage ?? memoryStorage();
  const now = options.now ?? Date.now;
  const marginMs = options.refreshMarginMs ?? 30_000;
  const wsUrl = options.wsUrl ?? options.url.replace(/^http/, 'ws');
  const listeners: { [E in keyof AuthClientEvents]: Set<AuthClientEvents[E]> } = {
    tokens: new Set(),
    signedOut: new Set(),
  };
  let tokens: AuthTokens | null = null;
  let refreshing: Promise<AuthTokens> | null = null;
  let watch: { client: WsClient; sessionId: string } | null = null;
  let disposed = false;

  async function post<T>(document: DocumentNode, variables: unknown, token: string | null): Promise<GraphQLResult<T>> {
    const response = await baseFetch(options.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query: print(document), variables }),
    });
    try {
      return (await response.json()) as GraphQLResult<T>;
    } catch {
      throw new Error(`${options.url} answered ${response.status} without a GraphQL response`);
    }
  }

  function emit<E extends keyof AuthClientEvents>(event: E, ...args: Parameters<AuthClientEvents[E]>) {
    for (const listener of listeners[event]) (listener as (...a: typeof args) => void)(...args);
  }

  function needsRefresh(current: AuthTokens): boolean {
    const expiresAt = Date.parse(current.accessTokenExpiresAt);
    const margin = Math.min(marginMs, Math.max(0, expiresAt - current.receivedAt) / 5);
    return now() >= expiresAt - margin;
  }

  async function adopt(payload: SignedInFragment): Promise<AuthTokens> {
    tokens = {
      accessToken: payload.accessToken,
      accessTokenExpiresAt: payload.accessTokenExpiresAt,
      refreshToken: payload.refreshToken,
      refreshTokenExpiresAt: payload.refreshTokenExpiresAt,
      userId: payload.user.id,
      sessionId: payload.session.id,
      receivedAt: now(),
    };
    await storage.save(tokens);
    emit('tokens', tokens);
    startWatch();
    return tokens;
  }

  async function signOut(reason: string, sessionId = tokens?.sessionId): Promise<void> {
    if (!tokens || tokens.sessionId !== sessionId) return;
    tokens = null;
    refreshing = null;
    stopWatch();
    await storage.clear();
    emit('signedOut', { reason, sessionId });
  }

  async function signIn(document: DocumentNode, input: unknown, field: 'login' | 'register') {
    const result = await post<Record<string, SignedInFragment>>(document, { input }, null);
    const payload = result.data?.[field];
    if (!payload) throw new AuthClientError(result.errors ?? []);
    stopWatch();
    await adopt(payload);
    return payload;
  }

  async function rotate(current: AuthTokens): Promise<AuthTokens> {
    const result = await post<{ refresh: SignedInFragment }>(
      RefreshDocument,
      { refreshToken: current.refreshToken },
      null,
    );
    if (tokens?.sessionId !== current.sessionId) throw new AuthClientError(result.errors ?? []); // signed out meanwhile
    if (result.data?.refresh) return adopt(result.data.refresh);
    const error = new AuthClientError(result.errors ?? []);
    if (error.reason === 'REFRESH_TOKEN_ROTATED') {
      // Another tab (sharing the storage) won the rotation: take what it stored.
      const stored = await storage.load();
      if (stored && stored.sessionId === current.sessionId && stored.refreshToken !== current.refreshToken) {
        tokens = stored;
        return stored;
      }
    }
    if (error.reason && SIGN_OUT_REASONS.has(error.reason)) await signOut(error.reason, current.sessionId);
    throw error;
  }

  function refresh(): Promise<AuthTokens> {
    const current = tokens;
    if (!current) return Promise.reject(new AuthClientError([notSignedIn()]));
    refreshing ??= rotate(current).finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  async function accessToken(): Promise<string | null> {
    if (refreshing) return (await refreshing).accessToken;
    if (!tokens) return null;
    return needsRefresh(tokens) ? (await refresh()).accessToken : tokens.accessToken;
  }

  async function recover(reason: string, usedToken: string): Promise<string | null> {
    if (!tokens) return null;
    if (reason === 'TOKEN_EXPIRED') {
      // Someone refreshed since this request left: retry with theirs rather than rotating again.
      if (tokens.accessToken !== usedToken) return tokens.accessToken;
      return (await refresh()).accessToken;
    }
    if (SIGN_OUT_REASONS.has(reason) && tokens.accessToken === usedToken) await signOut(reason);
    return null;
  }

  function startWatch() {
    if (options.watchRevocation === false || disposed || !tokens) return;
    if (watch?.sessionId === tokens.sessionId) return;
    stopWatch();
    const sessionId = tokens.sessionId;
    const client = createClient({
      url: wsUrl,
      lazy: true,
      retryAttempts: Number.POSITIVE_INFINITY,
      // The server closes a socket with 4403 when its token expires: reconnect with a fresh one.
      shouldRetry: () => tokens?.sessionId === sessionId,
      connectionParams: async () => {
        const token = await accessToken();
        return token ? { authorization: `Bearer ${token}` } : {};
      },
      ...(options.webSocketImpl ? { webSocketImpl: options.webSocketImpl } : {}),
    });
    watch = { client, sessionId };
    const subscribe = () => {
      client.subscribe<{ sessionRevoked: { sessionId: string; reason: string } }>(
        { query: print(SessionRevokedDocument) },
        {
          next: ({ data }) => {
            const event = data?.sessionRevoked;
            if (event?.sessionId === sessionId) void signOut(event.reason, sessionId);
          },
          // The server completes the subscription when the token it started with expires: start another.
          complete: () => resubscribe(),
          error: () => resubscribe(),
        },
      );
    };
    const resubscribe = () => {
      if (watch?.client === client && tokens?.sessionId === sessionId) setTimeout(subscribe, 50);
    };
    subscribe();
  }

  function stopWatch() {
    const client = watch?.client;
    watch = null;
    void client?.dispose();
  }

  async function request<TResult, TVariables>(
    document: TypedDocumentNode<TResult, TVariables>,
    variables?: TVariables,
  ) {
    const token = await accessToken();
    let result = await post<TResult>(document, variables, token);
    const reason = unauthenticatedReason(result.errors);
    if (token && reason) {
      const next = await recover(reason, token);
      if (next) result = await post<TResult>(document, variables, next);
    }
    if (result.errors?.length || !result.data) throw new AuthClientError(result.errors ?? []);
    return result.data;
  }

  const authFetch: typeof fetch = async (input, init) => {
    const send = (token: string | null) => {
      const headers = new Headers(init?.headers);
      if (token) headers.set('authorization', `Bearer ${token}`);
      return baseFetch(input, { ...init, headers });
    };
    const token = await accessToken();
    const response = await send(token);
    if (!token || !/json/.test(response.headers.get('content-type') ?? '')) return response;
    const body = (await response
      .clone()
      .json()
      .catch(() => undefined)) as GraphQLResult<unknown> | undefined;
    const reason = unauthenticatedReason(body?.errors);
    if (!reason) return response;
    const next = await recover(reason, token);
    return next ? send(next) : response;
  };

  return {
    get tokens() {
      return tokens;
    },
    register: (input) => signIn(RegisterDocument, input, 'register'),
    login: (input) => signIn(LoginDocument, input, 'login'),
    async logout() {
      const current = tokens;
      if (!current) return;
      try {
        await post(LogoutDocument, {}, current.accessToken);
      } finally {
        await signOut('LOGOUT', current.sessionId);
      }
    },
    async restore() {
      const stored = await storage.load();
      if (stored) {
        tokens = stored;
        startWatch();
      }
      return stored;
    },
    refresh,
    accessToken,
    recover,
    request: request as AuthClient['request'],
    fetch: authFetch,
    on(event, listener) {
      listeners[event].add(listener);
      return () => {
        listeners[event].delete(listener);
      };
    },
    signOut: (reason) => signOut(reason),
    async dispose() {
      disposed = true;
      stopWatch();
    },
  };
}

function notSignedIn(): GraphQLErrorLike {
  return { message: 'Not signed in', extensions: { code: 'UNAUTHENTICATED', reason: 'NOT_SIGNED_IN' } };
}
