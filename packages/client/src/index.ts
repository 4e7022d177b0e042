// The typed client SDK (browsers and Node): signs in, keeps the tokens, refreshes them before they expire
// (one refresh in flight, shared by every caller), retries an operation once after a refresh, and signs out
// when its session is revoked (heard through the sessionRevoked subscription). In cookie mode the refresh token
// lives in the server's HttpOnly cookie and never in this client. In a browser it also runs passkey (WebAuthn)
// ceremonies: registration, the passwordless sign-in and the second factor. apollo.ts and urql.ts build on it.
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { type DocumentNode, print } from 'graphql';
import { createClient, type Client as WsClient } from 'graphql-ws';
import {
  FinishPasskeyRegistrationDocument,
  LoginDocument,
  type LoginInput,
  LoginWithPasskeyDocument,
  LogoutDocument,
  type PasskeyFragment,
  RefreshDocument,
  RegisterDocument,
  type RegisterInput,
  SessionRevokedDocument,
  type SignedInFragment,
  StartPasskeyLoginDocument,
  type StartPasskeyLoginMutation,
  StartPasskeyRegistrationDocument,
  VerifyMfaDocument,
  type VerifyMfaInput,
} from './generated/graphql.ts';
import {
  authenticationJSON,
  type CreationOptionsJSON,
  creationOptions,
  type RequestOptionsJSON,
  registrationJSON,
  requestOptions,
  webAuthnCredentials,
} from './webauthn.ts';

/**
 * The sign-in inputs, the signed-in payload and a passkey ({ id, name, createdAt, lastUsedAt }), as the server's
 * schema types them.
 */
export type {
  LoginInput,
  PasskeyFragment,
  RegisterInput,
  SignedInFragment,
  VerifyMfaInput,
} from './generated/graphql.ts';
/** The typed documents of the operations this package ships (`MeDocument`, `LoginDocument`, …). */
export * as operations from './generated/graphql.ts';

/**
 * The server's vocabulary of `extensions.reason` for UNAUTHENTICATED answers (API.md, "Reasons"). A copy, so that
 * nothing server-side is installed with the client; the server's tests check that the two lists agree.
 */
export const UNAUTHENTICATED_REASONS = [
  'AUTHENTICATION_REQUIRED',
  'INVALID_TOKEN',
  'TOKEN_EXPIRED',
  'SESSION_REVOKED',
  'CLIENT_DISABLED',
  'ACCOUNT_DISABLED',
  'REFRESH_TOKEN_ROTATED',
  'REFRESH_TOKEN_REUSE',
  'REFRESH_TOKEN_EXPIRED',
  'INVALID_REFRESH_TOKEN',
  'REVOCATION_FEED_STALE',
] as const;
/** One of UNAUTHENTICATED_REASONS. */
export type UnauthenticatedReason = (typeof UNAUTHENTICATED_REASONS)[number];

/**
 * Where the server puts the refresh token. BODY: in the sign-in answer, kept by this client (and its storage).
 * COOKIE: in an HttpOnly cookie that scripts cannot read; this client never sees it (browsers only).
 */
export type TokenDelivery = 'BODY' | 'COOKIE';

/**
 * The header that satisfies the server's CSRF prevention (a custom header forces a CORS preflight). Every request
 * this package makes or wraps carries it, GET queries and anonymous operations included.
 */
export const CSRF_HEADER = 'x-graphql-yoga-csrf';
const CSRF_VALUE = 'graphql-auth-client';

/** What the client keeps between calls (and in its storage): a session's tokens. */
export interface AuthTokens {
  readonly accessToken: string;
  /** ISO 8601. */
  readonly accessTokenExpiresAt: string;
  /** null in cookie mode: the refresh token is in an HttpOnly cookie that this client cannot read. */
  readonly refreshToken: string | null;
  /** ISO 8601. */
  readonly refreshTokenExpiresAt: string;
  readonly userId: string;
  readonly sessionId: string;
  /** When this client received the access token (ms since the epoch): with the expiry, its lifetime. */
  readonly receivedAt: number;
}

/** Where tokens live besides memory (e.g. localStorage, a file, a keychain); may be async. */
export interface TokenStorage {
  /** The saved tokens, or null when there are none (or they cannot be read). */
  load(): AuthTokens | null | Promise<AuthTokens | null>;
  /** Replaces the saved tokens. */
  save(tokens: AuthTokens): void | Promise<void>;
  /** Forgets the saved tokens. */
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

/**
 * Keeps tokens in a Web Storage area (localStorage, sessionStorage) under `key`. Any script on the page can read
 * it, an injected one too: in a browser prefer cookie mode, which needs no storage for the refresh token.
 */
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

/** One entry of a GraphQL answer's `errors`. */
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

/** A second factor the server offers in MFA_REQUIRED. */
export type MfaMethod = 'TOTP' | 'PASSKEY' | 'RECOVERY_CODE';

/**
 * `login` (or an OAuth sign-in) of an account with a second factor: the password was right, and `verifyMfa` with
 * `mfaToken` and one of `methods` finishes the sign-in. No tokens were issued.
 */
export class MfaRequiredError extends AuthClientError {
  override name = 'MfaRequiredError';
  /** Single use, valid 5 minutes, dead after 5 wrong answers. Keep it in memory only. */
  readonly mfaToken: string;
  readonly methods: readonly MfaMethod[];
  /** PublicKeyCredentialRequestOptionsJSON for the account's passkeys, when it has any. */
  readonly passkeyOptions: Record<string, unknown> | undefined;

  constructor(errors: readonly GraphQLErrorLike[]) {
    super(errors);
    const extensions = errors[0]?.extensions ?? {};
    this.mfaToken = typeof extensions.mfaToken === 'string' ? extensions.mfaToken : '';
    this.methods = Array.isArray(extensions.methods) ? (extensions.methods as MfaMethod[]) : [];
    this.passkeyOptions =
      typeof extensions.passkeyOptions === 'object' && extensions.passkeyOptions !== null
        ? (extensions.passkeyOptions as Record<string, unknown>)
        : undefined;
  }
}

/** The client-side codes of PasskeyError (see there); the server never answers with these. */
export const PASSKEY_ERROR_CODES = [
  'PASSKEY_UNSUPPORTED',
  'PASSKEY_CANCELLED',
  'PASSKEY_ALREADY_REGISTERED',
  'PASSKEY_NOT_OFFERED',
  'PASSKEY_FAILED',
] as const;
/** One of PASSKEY_ERROR_CODES. */
export type PasskeyErrorCode = (typeof PASSKEY_ERROR_CODES)[number];

/**
 * A passkey ceremony that ended in this client, before its answer was sent: no session was opened and nothing
 * counted against the account (an mfaToken stays usable). An AuthClientError whose `code` is one of:
 * - PASSKEY_UNSUPPORTED: no WebAuthn here (Node, an old browser, a page that is not a secure context). Raised
 *   before any request.
 * - PASSKEY_CANCELLED: the browser answered NotAllowedError (the user dismissed the prompt or failed user
 *   verification, the ceremony timed out, or no passkey on this device matched: WebAuthn does not let a page tell
 *   these apart) or AbortError (the `signal` given; already aborted, before any request).
 * - PASSKEY_ALREADY_REGISTERED: registerPasskey only (InvalidStateError): this authenticator already holds a
 *   passkey of this account (the options' excludeCredentials).
 * - PASSKEY_NOT_OFFERED: verifyMfaWithPasskey for an MfaRequiredError without `passkeyOptions`.
 * - PASSKEY_FAILED: any other failure of the ceremony, e.g. SecurityError when the page's origin is not on the
 *   server's relying party id (WEBAUTHN_RP_ID), or a credential not shaped as the standard's (a passkey
 *   extension's stand-in). `cause` is the browser's error.
 */
export class PasskeyError extends AuthClientError {
  override name = 'PasskeyError';
  declare readonly code: PasskeyErrorCode;

  constructor(code: PasskeyErrorCode, message: string, cause?: unknown) {
    super([{ message, extensions: { code } }]);
    if (cause !== undefined) this.cause = cause;
  }
}

/** What the passkey helpers take besides their own input. */
export interface PasskeyCeremonyOptions {
  /**
   * Aborts the browser's ceremony (PasskeyError PASSKEY_CANCELLED), e.g. when the user leaves the form; already
   * aborted, the helper sends nothing at all.
   */
  readonly signal?: AbortSignal;
}

/** The input of `registerPasskey`. */
export interface PasskeyRegistrationInput extends PasskeyCeremonyOptions {
  /** A name the user will recognise it by (at most 100 characters); none when left out. */
  readonly name?: string | null;
}

/** The input of `loginWithPasskey`. */
export interface PasskeySignInInput extends PasskeyCeremonyOptions {
  /**
   * Only this account's passkeys may answer. Left out: any discoverable passkey (resident key) for the site. An
   * email with no passkeys (or no account) still gets a prompt, so as not to tell which accounts exist; whatever
   * passkey answers it is refused (INVALID_CREDENTIALS).
   */
  readonly email?: string | null;
}

/** navigator.credentials, or PASSKEY_UNSUPPORTED before anything is sent. */
function requireWebAuthn() {
  const credentials = webAuthnCredentials();
  if (!credentials) {
    throw new PasskeyError(
      'PASSKEY_UNSUPPORTED',
      'Passkeys need WebAuthn: a browser with PublicKeyCredential, on a secure (https or localhost) page',
    );
  }
  return credentials;
}

/** PASSKEY_CANCELLED before anything is sent when the caller's signal is already aborted. */
function notAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new PasskeyError('PASSKEY_CANCELLED', 'The passkey ceremony was aborted', signal.reason);
}

/**
 * Runs one ceremony with its errors named, and turns its credential into the JSON to send. Options are converted
 * inside `run` and the credential inside too, so malformed options, or a credential not shaped as the standard's
 * (a passkey extension's stand-in), fail as the ceremony (PASSKEY_FAILED) and nothing is sent.
 */
async function ceremony<T>(
  run: () => Promise<unknown>,
  registering: boolean,
  toJSON: (credential: unknown) => T,
): Promise<T> {
  let credential: unknown;
  let json: T;
  try {
    credential = await run();
    if (!credential) throw new PasskeyError('PASSKEY_CANCELLED', 'The browser returned no passkey');
    json = toJSON(credential);
  } catch (error) {
    if (error instanceof PasskeyError) throw error;
    const name = (error as { name?: unknown } | null)?.name;
    if (name === 'NotAllowedError' || name === 'AbortError')
      throw new PasskeyError(
        'PASSKEY_CANCELLED',
        'The passkey prompt was cancelled, timed out or found no passkey',
        error,
      );
    if (registering && name === 'InvalidStateError')
      throw new PasskeyError(
        'PASSKEY_ALREADY_REGISTERED',
        'This authenticator already holds a passkey of this account',
        error,
      );
    throw new PasskeyError('PASSKEY_FAILED', `The passkey ceremony failed (${String(name ?? 'Error')})`, error);
  }
  return json;
}

/** The error a sign-in answer carries: MfaRequiredError for MFA_REQUIRED, AuthClientError otherwise. */
const signInError = (errors: readonly GraphQLErrorLike[]): AuthClientError =>
  errors[0]?.extensions?.code === 'MFA_REQUIRED' ? new MfaRequiredError(errors) : new AuthClientError(errors);

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

/** What `signedOut` listeners receive. */
export interface SignedOutEvent {
  /** LOGOUT for `logout()`, otherwise the reason the session ended (e.g. SESSION_REVOKED, REVOKED_BY_USER). */
  readonly reason: string;
  readonly sessionId: string;
}

/** The events of `AuthClient.on`. */
export interface AuthClientEvents {
  /** New tokens: after sign-in and after every refresh. */
  tokens: (tokens: AuthTokens) => void;
  signedOut: (event: SignedOutEvent) => void;
}

/** The options of `createAuthClient`. */
export interface AuthClientOptions {
  /** The GraphQL endpoint, e.g. https://auth.example.com/graphql. */
  readonly url: string;
  /**
   * BODY (the default) keeps the refresh token in this client and its storage. COOKIE (browsers) asks the server
   * to keep it in an HttpOnly cookie: this client sends its own requests with credentials and holds no refresh
   * token, and `restore()` gets a new access token from the cookie after a reload.
   */
  readonly tokenDelivery?: TokenDelivery;
  /** The client id (an app registered on the server) sent with every sign-in; the server's default when unset. */
  readonly clientId?: string;
  /**
   * Cookie mode: take turns with the other tabs of this browser to refresh (Web Locks), since they share one cookie.
   * Default: true in a page (where `document` exists). Elsewhere, e.g. a Node server with a client per user, the
   * clients share no cookie and a process-wide lock would only queue them.
   */
  readonly tabLock?: boolean;
  /** The WebSocket endpoint; defaults to `url` with ws(s)://. */
  readonly wsUrl?: string;
  /** Defaults to the global fetch. */
  readonly fetch?: typeof fetch;
  /**
   * Defaults to the global WebSocket (browsers, Node 22+). Without either (Node 20: pass `ws`), the client does not
   * watch for revocations and hears of its session's end at the next refresh.
   */
  readonly webSocketImpl?: unknown;
  /** Defaults to memory only. In cookie mode it never receives a refresh token. */
  readonly storage?: TokenStorage;
  /** Refresh this long before the access token expires (default 30 s; at most a fifth of its lifetime). */
  readonly refreshMarginMs?: number;
  /** Subscribe to sessionRevoked while signed in, and sign out when this session is revoked (default true). */
  readonly watchRevocation?: boolean;
  /** Milliseconds since the epoch; for tests. */
  readonly now?: () => number;
}

/** A sign-in input without what the client sets itself (`tokenDelivery`, and `clientId` when configured). */
export type SignInInput<T> = Omit<T, 'tokenDelivery'>;

/** A client for one auth server, made by `createAuthClient`. */
export interface AuthClient {
  /** The current tokens, or null when signed out. */
  readonly tokens: AuthTokens | null;
  /** Where this client asks the server to put the refresh token. */
  readonly tokenDelivery: TokenDelivery;
  /** Creates an account and signs in to it; rejects with AuthClientError. */
  register(input: SignInInput<RegisterInput>): Promise<SignedInFragment>;
  /**
   * Signs in with email and password; rejects with AuthClientError, and with MfaRequiredError (code MFA_REQUIRED)
   * when the account has a second factor: then call `verifyMfa`.
   */
  login(input: SignInInput<LoginInput>): Promise<SignedInFragment>;
  /**
   * Finishes a sign-in that rejected with MfaRequiredError: its `mfaToken` and one factor (`code`, `recoveryCode`
   * or `passkeyResponse`). Rejects with AuthClientError (INVALID_CODE for a wrong factor).
   */
  verifyMfa(input: SignInInput<VerifyMfaInput>): Promise<SignedInFragment>;
  /**
   * Browsers: adds a passkey to the signed-in account (bearer or cookie mode). Runs WebAuthn registration:
   * startPasskeyRegistration's PublicKeyCredentialCreationOptions (user verification required, a discoverable
   * credential) → navigator.credentials.create → finishPasskeyRegistration with the RegistrationResponseJSON.
   * Resolves to the new passkey. The server ends the account's other sessions (MFA_CHANGED); this one goes on.
   * Rejects with PasskeyError (nothing sent after a cancelled ceremony), or AuthClientError from the server
   * (UNAUTHENTICATED when signed out; BAD_USER_INPUT, field response, when the answer does not verify).
   */
  registerPasskey(input?: PasskeyRegistrationInput): Promise<PasskeyFragment>;
  /**
   * Browsers: signs in with a passkey alone (both factors), exactly as `login` does (the configured clientId and
   * token delivery, the `tokens` event, the revocation watch). startPasskeyLogin (with `email`: that account's
   * passkeys; without: any discoverable one, the authenticator offering its own) → navigator.credentials.get →
   * loginWithPasskey with the AuthenticationResponseJSON. Rejects with PasskeyError (nothing sent after a
   * cancelled ceremony), or AuthClientError from the server: INVALID_CREDENTIALS for an assertion it refuses,
   * RATE_LIMITED.
   */
  loginWithPasskey(input?: PasskeySignInInput): Promise<SignedInFragment>;
  /**
   * Browsers: finishes a sign-in that rejected with MfaRequiredError with one of the account's passkeys: runs
   * navigator.credentials.get on its `passkeyOptions` and sends the assertion as verifyMfa's `passkeyResponse`
   * (same as `verifyMfa({ mfaToken, passkeyResponse })` with a ceremony of your own). Rejects with PasskeyError
   * (PASSKEY_NOT_OFFERED when the error carries no passkeyOptions; after a cancelled ceremony the mfaToken is
   * unspent, so another factor may still finish), or AuthClientError as `verifyMfa` does. An answer the server
   * refuses (INVALID_CODE) spends the step's passkey challenge: finish with another factor, or `login` again.
   */
  verifyMfaWithPasskey(
    challenge: Pick<MfaRequiredError, 'mfaToken' | 'passkeyOptions'>,
    options?: PasskeyCeremonyOptions,
  ): Promise<SignedInFragment>;
  /** Revokes this session on the server (best effort; in cookie mode the server clears the cookie) and signs out. */
  logout(): Promise<void>;
  /**
   * After a page reload: BODY mode loads the tokens from the storage; COOKIE mode gets a new access token from the
   * refresh cookie. Null when there is no session to resume.
   */
  restore(): Promise<AuthTokens | null>;
  /** Rotates the refresh token now (in cookie mode, the cookie). Concurrent calls share one request. */
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
  /** Adds a listener; returns the function that removes it. */
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

/**
 * Creates a client for one auth server: `createAuthClient({ url: 'https://auth.example.com/graphql' })`, or with
 * `tokenDelivery: 'COOKIE'` in a browser app.
 */
export function createAuthClient(options: AuthClientOptions): AuthClient {
  const baseFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const storage = options.storage ?? memoryStorage();
  const now = options.now ?? Date.now;
  const marginMs = options.refreshMarginMs ?? 30_000;
  const wsUrl = options.wsUrl ?? options.url.replace(/^http/, 'ws');
  const cookieMode = options.tokenDelivery === 'COOKIE';
  const tabLock = options.tabLock ?? typeof (globalThis as { document?: unknown }).document !== 'undefined';
  const listeners: { [E in keyof AuthClientEvents]: Set<AuthClientEvents[E]> } = {
    tokens: new Set(),
    signedOut: new Set(),
  };
  let tokens: AuthTokens | null = null;
  // Bumped by every sign-in and sign-out: a refresh answer that arrives after either is stale and is dropped.
  let epoch = 0;
  let refreshing: Promise<AuthTokens> | null = null;
  let watch: { client: WsClient; sessionId: string } | null = null;
  let disposed = false;

  async function post<T>(document: DocumentNode, variables: unknown, token: string | null): Promise<GraphQLResult<T>> {
    const response = await baseFetch(options.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        [CSRF_HEADER]: CSRF_VALUE,
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      // Cookie mode: the browser sends and stores the refresh cookie only on credentialed requests.
      ...(cookieMode ? { credentials: 'include' as const } : {}),
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
      // Never kept in cookie mode, even if a server sent one.
      refreshToken: cookieMode ? null : (payload.refreshToken ?? null),
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
    epoch++;
    refreshing = null;
    stopWatch();
    await storage.clear();
    emit('signedOut', { reason, sessionId });
  }

  async function signIn(
    document: DocumentNode,
    input: object,
    field: 'login' | 'register' | 'verifyMfa' | 'loginWithPasskey',
  ) {
    const full = {
      ...input,
      // verifyMfa's session is for the client its login named.
      ...(options.clientId !== undefined && field !== 'verifyMfa' ? { clientId: options.clientId } : {}),
      ...(cookieMode ? { tokenDelivery: 'COOKIE' } : {}),
    };
    const result = await post<Record<string, SignedInFragment>>(document, { input: full }, null);
    const payload = result.data?.[field];
    if (!payload) throw signInError(result.errors ?? []);
    epoch++;
    refreshing = null;
    stopWatch();
    await adopt(payload);
    return payload;
  }

  /** One refresh request: the refresh token in the body (BODY mode) or none, so the server reads the cookie. */
  async function rotateOnce(current: AuthTokens | null) {
    if (!cookieMode)
      return post<{ refresh: SignedInFragment }>(RefreshDocument, { refreshToken: current?.refreshToken }, null);
    // Every tab of this browser shares the one cookie: one refresh at a time across them (Web Locks, where there
    // are any), each sent only after the previous answer has set the new cookie, so tabs do not spend it together.
    const send = () => post<{ refresh: SignedInFragment }>(RefreshDocument, {}, null);
    const locks = tabLock ? (globalThis.navigator as { locks?: LockManager } | undefined)?.locks : undefined;
    return locks ? locks.request(`graphql-auth-client refresh ${options.url}`, send) : send();
  }

  async function rotate(current: AuthTokens | null): Promise<AuthTokens> {
    const started = epoch;
    let result = await rotateOnce(current);
    let error = result.data?.refresh ? null : new AuthClientError(result.errors ?? []);
    // Another tab (of a browser without Web Locks) won the rotation: its answer sets the new cookie here, perhaps a
    // moment after ours arrived. Until then the old cookie only answers REFRESH_TOKEN_ROTATED again (the server's
    // reuse grace, 10 s by default, spares it), so a few short retries are safe.
    for (let attempt = 1; cookieMode && error?.reason === 'REFRESH_TOKEN_ROTATED' && attempt <= 3; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      if (started !== epoch) break;
      result = await rotateOnce(current);
      error = result.data?.refresh ? null : new AuthClientError(result.errors ?? []);
    }
    if (started !== epoch) throw new AuthClientError(result.errors ?? [notSignedIn()]); // signed in or out meanwhile
    if (result.data?.refresh) return adopt(result.data.refresh);
    const failure = error ?? new AuthClientError([]);
    if (!cookieMode && current && failure.reason === 'REFRESH_TOKEN_ROTATED') {
      // Another tab (sharing the storage) won the rotation: take what it stored.
      const stored = await storage.load();
      if (stored && stored.sessionId === current.sessionId && stored.refreshToken !== current.refreshToken) {
        tokens = stored;
        return stored;
      }
    }
    if (current && failure.reason && SIGN_OUT_REASONS.has(failure.reason))
      await signOut(failure.reason, current.sessionId);
    throw failure;
  }

  function refresh(): Promise<AuthTokens> {
    const current = tokens;
    // In cookie mode the cookie is the session: it can be refreshed without tokens in memory (after a reload).
    if (!current && !cookieMode) return Promise.reject(new AuthClientError([notSignedIn()]));
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

  async function restore(): Promise<AuthTokens | null> {
    if (!cookieMode) {
      const stored = await storage.load();
      if (stored) {
        tokens = stored;
        startWatch();
      }
      return stored;
    }
    try {
      return await refresh();
    } catch (error) {
      // No cookie, or a dead one: nothing to resume. Anything else (the network, the server) is the caller's.
      if (error instanceof AuthClientError && error.code === 'UNAUTHENTICATED') {
        await storage.clear();
        return null;
      }
      throw error;
    }
  }

  function startWatch() {
    if (options.watchRevocation === false || disposed || !tokens) return;
    if (watch?.sessionId === tokens.sessionId) return;
    stopWatch();
    // Node 20 has no global WebSocket: without one (and none passed) there is no watch, rather than a sign-in that
    // fails after the server opened the session. The session's end is then heard at its next refresh.
    const webSocketImpl = options.webSocketImpl ?? (globalThis as { WebSocket?: unknown }).WebSocket;
    if (!webSocketImpl) return;
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
      webSocketImpl,
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
      // Also for anonymous operations and GET queries, which CSRF prevention refuses without it.
      headers.set(CSRF_HEADER, CSRF_VALUE);
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
    tokenDelivery: cookieMode ? 'COOKIE' : 'BODY',
    register: (input) => signIn(RegisterDocument, input, 'register'),
    login: (input) => signIn(LoginDocument, input, 'login'),
    verifyMfa: (input) => signIn(VerifyMfaDocument, input, 'verifyMfa'),
    async registerPasskey(input = {}) {
      const credentials = requireWebAuthn();
      notAborted(input.signal);
      const started = await request(StartPasskeyRegistrationDocument, {});
      const publicKey = () => creationOptions(started.startPasskeyRegistration as CreationOptionsJSON);
      const response = await ceremony(
        () => credentials.create({ publicKey: publicKey(), signal: input.signal }),
        true,
        registrationJSON,
      );
      const finished = await request(FinishPasskeyRegistrationDocument, { response, name: input.name ?? null });
      return finished.finishPasskeyRegistration;
    },
    async loginWithPasskey(input = {}) {
      const credentials = requireWebAuthn();
      notAborted(input.signal);
      const started = await post<StartPasskeyLoginMutation>(
        StartPasskeyLoginDocument,
        input.email == null ? {} : { email: input.email },
        null,
      );
      const challenge = started.data?.startPasskeyLogin;
      if (!challenge) throw new AuthClientError(started.errors ?? []);
      const publicKey = () => requestOptions(challenge.options as RequestOptionsJSON);
      const response = await ceremony(
        () => credentials.get({ publicKey: publicKey(), signal: input.signal }),
        false,
        authenticationJSON,
      );
      return signIn(LoginWithPasskeyDocument, { challengeId: challenge.challengeId, response }, 'loginWithPasskey');
    },
    async verifyMfaWithPasskey(challenge, ceremonyOptions = {}) {
      const credentials = requireWebAuthn();
      const options = challenge.passkeyOptions;
      if (!options)
        throw new PasskeyError('PASSKEY_NOT_OFFERED', 'This sign-in offers no passkey: answer it with another factor');
      notAborted(ceremonyOptions.signal);
      const publicKey = () => requestOptions(options as unknown as RequestOptionsJSON);
      const passkeyResponse = await ceremony(
        () => credentials.get({ publicKey: publicKey(), signal: ceremonyOptions.signal }),
        false,
        authenticationJSON,
      );
      return signIn(VerifyMfaDocument, { mfaToken: challenge.mfaToken, passkeyResponse }, 'verifyMfa');
    },
    async logout() {
      // Cookie mode after a reload: the session lives only in the cookie until restore(); learn it to end it.
      const current = tokens ?? (cookieMode ? await restore().catch(() => null) : null);
      if (!current) return;
      try {
        await post(LogoutDocument, {}, await accessToken().catch(() => current.accessToken));
      } finally {
        await signOut('LOGOUT', current.sessionId);
      }
    },
    restore,
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
