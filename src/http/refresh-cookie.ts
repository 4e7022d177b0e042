// The refresh cookie of browser sessions (tokenDelivery COOKIE): its attributes, reading it only for a request
// that cannot be a cross-site forgery, and the Set-Cookie an answer carries: set or cleared by a resolver, or
// cleared because the session the cookie belongs to is over: the request revoked it, whichever flow did, or the
// answer says the caller's own session was revoked already (by a request this instance may not have heard of).
import { type GraphQLError, Kind } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Clock } from '../clock.ts';
import { AuthError, unauthenticated } from '../errors.ts';
import type { RevocationBus } from '../events/revocation-bus.ts';
import type { RefreshCookie } from '../schema/context.ts';
import { parseRefreshToken } from '../sessions/refresh-token.ts';
import type { OriginPolicy } from './origins.ts';

export interface RefreshCookieSettings {
  readonly name: string;
  readonly domain: string | undefined;
  readonly sameSite: 'Strict' | 'Lax';
  /** Left out only for http://localhost and http://127.0.0.1 outside production (judged from PUBLIC_URL). */
  readonly secure: boolean;
}

/** The only path the cookie is sent to: the API, never the app's pages or the well-known documents. */
const COOKIE_PATH = '/graphql';

/**
 * Headers that only a preflighted (so CORS-checked) request can carry. A bearer token travels in one, so it
 * counts. Used by CSRF prevention for every request and checked again before the cookie is read.
 */
export const CSRF_HEADERS = ['x-graphql-yoga-csrf', 'apollo-require-preflight', 'authorization'];

/** Content types a browser sends cross-site without a preflight (a form, or a beacon). */
const SIMPLE_CONTENT_TYPES = ['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'];

/** Whether a browser could only have sent this request after a CORS preflight (the CSRF plugin's rule). */
export function passesCsrfPrevention(headers: Headers): boolean {
  const type = headers.get('content-type')?.trim().toLowerCase();
  if (type && !SIMPLE_CONTENT_TYPES.some((simple) => type.startsWith(simple))) return true;
  return CSRF_HEADERS.some((name) => headers.has(name));
}

/** Every value of cookie `name` in a Cookie header (a browser sends several when other paths or domains set it). */
export function cookieValues(header: string | null, name: string): string[] {
  if (!header) return [];
  const values: string[] = [];
  for (const pair of header.split(';')) {
    const at = pair.indexOf('=');
    if (at !== -1 && pair.slice(0, at).trim() === name) values.push(pair.slice(at + 1).trim());
  }
  return values;
}

/** A Set-Cookie value: `maxAge` 0 clears it. */
export function refreshCookieHeader(settings: RefreshCookieSettings, value: string, maxAge: number): string {
  return [
    `${settings.name}=${value}`,
    `Max-Age=${maxAge}`,
    `Path=${COOKIE_PATH}`,
    ...(settings.domain ? [`Domain=${settings.domain}`] : []),
    'HttpOnly',
    ...(settings.secure ? ['Secure'] : []),
    `SameSite=${settings.sameSite}`,
  ].join('; ');
}

export interface RefreshCookiesDeps {
  readonly settings: RefreshCookieSettings;
  readonly origins: OriginPolicy;
  readonly clock: Clock;
  readonly bus: RevocationBus;
  /** Whether this instance knows the session is revoked: a cookie naming it is cleared by whatever answer. */
  readonly isRevoked: (sessionId: string) => boolean;
  /** The running request's scope object (request-scope.ts), the key that ties a revocation to its request. */
  readonly scope: () => object | undefined;
}

export interface RefreshCookies {
  /**
   * The context's refreshCookie: the HTTP request's, or (no request: a WebSocket) one that can do nothing.
   * `sessionId` is the session of the access token the request carries (the `sid` claim), if any: an answer that
   * this session is revoked clears its cookie.
   */
  forRequest(request: Request | undefined, sessionId?: string): RefreshCookie;
  /** Writes each answer's Set-Cookie. */
  readonly plugin: Plugin;
  close(): void;
}

interface Pending {
  readonly request: Request;
  /** The session of the request's access token. */
  readonly sessionId: string | undefined;
  /** What a resolver decided; it overrides the clearing that a revocation implies. */
  answer: { readonly value: string; readonly maxAge: number } | 'clear' | undefined;
}

const forbidden = (message: string) => new AuthError('FORBIDDEN', message);

/** Whether `error` was raised by a root `refresh` field itself (by its name: the response key may be an alias). */
const raisedByRefresh = (error: GraphQLError) => {
  const node = error.nodes?.[0];
  return error.path?.length === 1 && node?.kind === Kind.FIELD && node.name.value === 'refresh';
};

/**
 * Whether `errors` tell the caller that its own session (the access token's) is revoked. `refresh` is the one field
 * whose SESSION_REVOKED is about another session, the one of the token it spends; a refresh by cookie clears its
 * cookie itself (token-delivery.ts).
 */
const callerSessionRevoked = (errors: readonly GraphQLError[] | undefined) =>
  errors?.some((error) => error.extensions?.reason === 'SESSION_REVOKED' && !raisedByRefresh(error)) ?? false;

const NO_COOKIE: RefreshCookie = {
  settable: false,
  carries: () => false,
  read: async () => undefined,
  set() {
    throw new Error('no cookie can be set over this transport');
  },
  clear() {},
};

export function createRefreshCookies(deps: RefreshCookiesDeps): RefreshCookies {
  const { settings } = deps;
  const pending = new WeakMap<object, Pending>();
  // Sessions each request revoked, whatever flow did it: the bus tells this instance's listeners inside the
  // publisher's call, so the revoking request's scope is the current one.
  const revokedBy = new WeakMap<object, Set<string>>();
  const ended = (scope: object, sessionIds: readonly string[]) => {
    const ids = revokedBy.get(scope) ?? new Set<string>();
    for (const id of sessionIds) ids.add(id);
    revokedBy.set(scope, ids);
  };
  const unsubscribe = deps.bus.subscribe((event) => {
    const scope = deps.scope();
    if (scope) ended(scope, event.sessionIds);
  });

  return {
    forRequest(request, sessionId) {
      const scope = deps.scope();
      if (!request || !scope) return NO_COOKIE;
      const state: Pending = { request, sessionId, answer: undefined };
      pending.set(scope, state);
      return {
        settable: true,
        async read() {
          if (!passesCsrfPrevention(request.headers)) {
            throw forbidden('Reading the refresh cookie needs a request that passes CSRF prevention');
          }
          const origin = request.headers.get('origin');
          if (origin !== null && !(await deps.origins.allows(origin))) {
            throw forbidden('This origin may not use the refresh cookie');
          }
          const values = cookieValues(request.headers.get('cookie'), settings.name);
          // Two cookies of one name: one was set by someone else (a sibling domain); neither is trusted.
          if (values.length > 1) throw unauthenticated('INVALID_REFRESH_TOKEN');
          return values[0] || undefined;
        },
        carries(sessionId) {
          // Only which session the cookie names: its value is not trusted here, so no CSRF or Origin check.
          return cookieValues(request.headers.get('cookie'), settings.name).some(
            (value) => parseRefreshToken(value)?.sessionId === sessionId,
          );
        },
        set(token, expiresAt) {
          const maxAge = Math.max(0, Math.floor((expiresAt.getTime() - deps.clock.now()) / 1000));
          state.answer = { value: token, maxAge };
        },
        clear() {
          state.answer = 'clear';
        },
      };
    },
    plugin: {
      onExecutionResult({ request, result }) {
        const scope = deps.scope();
        const state = scope && pending.get(scope);
        if (!scope || !state || state.request !== request || state.sessionId === undefined) return;
        if (result && !(Symbol.asyncIterator in result) && callerSessionRevoked(result.errors as GraphQLError[])) {
          ended(scope, [state.sessionId]);
        }
      },
      onResponse({ request, response }) {
        const scope = deps.scope();
        if (!scope) return;
        const state = pending.get(scope);
        // No state: the request never got a context (a refused token among the reasons); its cookie may still name
        // a session known to be over.
        const own = state?.request === request ? state : undefined;
        const revoked = revokedBy.get(scope);
        // The cookie is looked at here only to tell whether it belongs to a session that is over: its value is never
        // used as a credential, so no origin check is needed to clear it.
        const over = (value: string) => {
          const id = parseRefreshToken(value)?.sessionId;
          return id !== undefined && (revoked?.has(id) === true || deps.isRevoked(id));
        };
        let answer = own?.answer;
        // A cookie a resolver set for a session this request then ended (`refresh` and `logout` in one mutation)
        // would hand the browser a dead session's token: cleared instead.
        if (answer !== undefined && answer !== 'clear' && over(answer.value)) answer = 'clear';
        if (answer === undefined && cookieValues(request.headers.get('cookie'), settings.name).some(over)) {
          answer = 'clear';
        }
        if (answer === undefined) return;
        response.headers.append(
          'set-cookie',
          answer === 'clear'
            ? refreshCookieHeader(settings, '', 0)
            : refreshCookieHeader(settings, answer.value, answer.maxAge),
        );
      },
    },
    close: unsubscribe,
  };
}
