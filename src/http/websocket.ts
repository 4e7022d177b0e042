// graphql-ws on the HTTP server's /graphql path. A socket authenticates once, in connection_init; it is
// closed with 4403 when its session is revoked (after any sessionRevoked subscription on it has delivered the
// event and completed), when its client's revocation refuses its token (client disabled, secret rotated: after
// a revocations subscription on it has told it and completed) and when its token expires, so a socket never
// outlives the token that opened it.
// A socket is bounded: WS_MAX_OPERATIONS running at once, WS_MAX_MESSAGE_BYTES a message (1009 past it), and
// connection_init within WS_CONNECTION_INIT_TIMEOUT (4408); errors are masked as over HTTP.
import type { IncomingMessage, Server } from 'node:http';
import { type DocumentNode, type ExecutionResult, GraphQLError, getOperationAST } from 'graphql';
import type { SubscribePayload, Context as WsContext } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import type { YogaServerInstance } from 'graphql-yoga';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { WebSocketServer } from 'ws';
import { type ClientRegistry, revocationCutoffSeconds } from '../clients/registry.ts';
import type { Clock } from '../clock.ts';
import type { WebSocketLimitsConfig } from '../config.ts';
import { AuthError, unauthenticated } from '../errors.ts';
import type { ClientChangedEvent, RevocationBus } from '../events/revocation-bus.ts';
import { createMaskError, toGraphQLError, withoutQuotedValues } from '../schema/errors.ts';
import type { VerifiedClaims } from '../tokens/claims.ts';
import type { AccessTokenVerifier } from '../tokens/verify.ts';
import { authenticate } from './authenticate.ts';
import type { RequestScope, RequestScopes } from './request-scope.ts';
import { endOnAbort } from './use-shutdown.ts';
import { createWsOperationLog } from './ws-operation-log.ts';

export const CLOSE_FORBIDDEN = 4403;
/** How long a socket whose session was revoked waits for its subscriptions to complete before closing anyway. */
const REVOKED_CLOSE_DEADLINE_MS = 1000;

type Extra = {
  socket: WebSocket;
  request: IncomingMessage;
  auth?: VerifiedClaims | null;
  revoked?: boolean;
  /** The token expired: the socket's subscriptions are being completed, then it closes with 4403. */
  expired?: boolean;
  /** Aborted to complete every subscription of the socket (its token expired). */
  ending?: AbortController;
  timer?: NodeJS.Timeout;
  /** Operations started on this socket and not yet ended (counted by us: a client's complete does not end one). */
  operations?: number;
  [key: string]: unknown;
};
type Ctx = WsContext<{ authorization?: unknown }, Extra>;

interface EnvelopRoot {
  execute: (args: unknown) => never;
  subscribe: (args: unknown) => never;
  /** Aborts when the socket's subscriptions must complete (its token expired). */
  ending: AbortSignal;
  /** Ends the operation's claim on the socket's WS_MAX_OPERATIONS (once, however often it is called). */
  release: () => void;
  /** The operation's log scope: what it logs carries its request id. */
  scope?: RequestScope;
}

export interface WebSocketDeps {
  readonly verify: AccessTokenVerifier;
  readonly bus: RevocationBus;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly webSocket: WebSocketLimitsConfig;
  /** Told +1 when a subscription starts streaming and -1 when it ends, however it ends. */
  readonly onSubscriptionChange?: (delta: 1 | -1) => void;
  /** Each operation runs inside its own scope (request id, access line), as an HTTP request does. */
  readonly scopes?: RequestScopes;
  /** The client registry, whose revocations (client disabled, secret rotated) end a socket's token too. */
  readonly services?: { readonly clients: Pick<ClientRegistry, 'refuses'> };
}

/** `extensions.headers.authorization` (any case) of a subscribe message, when it is a string. */
function operationAuthorization(extensions: unknown): string | undefined {
  const headers = (extensions as { headers?: unknown } | null | undefined)?.headers;
  if (typeof headers !== 'object' || headers === null) return undefined;
  const entry = Object.entries(headers).find(([name]) => name.toLowerCase() === 'authorization');
  return typeof entry?.[1] === 'string' ? entry[1] : undefined;
}

/** Whether graphql-ws would iterate this operation result (a subscription's stream). */
function isStream(result: unknown): result is AsyncIterable<unknown> {
  return typeof result === 'object' && result !== null && Symbol.asyncIterator in result;
}

/** Wraps a subscription's stream so that `onChange` hears exactly one +1 and one -1 (end, error or return). */
function tracked<T>(source: AsyncIterable<T>, onChange: (delta: 1 | -1) => void): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  let open = true;
  onChange(1);
  const end = () => {
    if (open) onChange(-1);
    open = false;
  };
  const wrapper: AsyncGenerator<T> = {
    async next() {
      try {
        const step = await iterator.next();
        if (step.done) end();
        return step;
      } catch (error) {
        end();
        throw error;
      }
    },
    async return(value) {
      end();
      return iterator.return ? iterator.return(value) : { done: true, value };
    },
    async throw(error) {
      end();
      if (iterator.throw) return iterator.throw(error);
      throw error;
    },
    [Symbol.asyncIterator]() {
      return wrapper;
    },
    async [Symbol.asyncDispose]() {
      await wrapper.return(undefined);
    },
  };
  return wrapper;
}

// biome-ignore lint/suspicious/noExplicitAny: the server and user context types are Yoga's concern here
export function attachWebSocketServer(server: Server, yoga: YogaServerInstance<any, any>, deps: WebSocketDeps) {
  const limits = deps.webSocket;
  // ws refuses a bigger message before buffering it whole, and closes the socket with 1009.
  const wss = new WebSocketServer({ server, path: '/graphql', maxPayload: limits.maxMessageBytes });
  const operationLog = createWsOperationLog(deps.logger);
  const mask = (errors: readonly GraphQLError[], logger: Logger = deps.logger) => {
    const maskError = createMaskError(logger);
    return errors.map((error) => maskError(error, 'Unexpected error.') as GraphQLError);
  };
  const inScope = <T>(root: EnvelopRoot, work: () => T): T =>
    root.scope && deps.scopes ? deps.scopes.run(root.scope, work) : work();
  const bySession = new Map<string, Set<Ctx>>();
  const byClient = new Map<string, Set<Ctx>>();

  const close = (ctx: Ctx, reason: string) => {
    clearTimeout(ctx.extra.timer);
    if (ctx.extra.socket.readyState === ctx.extra.socket.OPEN) ctx.extra.socket.close(CLOSE_FORBIDDEN, reason);
  };

  // As for a revocation: every subscription of the socket completes (the client hears "complete", not an error),
  // then the socket closes with 4403; one that does not complete in time is closed anyway.
  const expire = (ctx: Ctx) => {
    ctx.extra.expired = true;
    if (Object.keys(ctx.subscriptions).length === 0) return close(ctx, 'Token expired');
    ctx.extra.ending?.abort();
    ctx.extra.timer = setTimeout(() => close(ctx, 'Token expired'), REVOKED_CLOSE_DEADLINE_MS);
  };

  const forget = (ctx: Ctx) => {
    clearTimeout(ctx.extra.timer);
    const clientId = ctx.extra.auth?.client_id;
    const ofClient = clientId === undefined ? undefined : byClient.get(clientId);
    ofClient?.delete(ctx);
    if (clientId !== undefined && ofClient?.size === 0) byClient.delete(clientId);
    const sid = ctx.extra.auth?.kind === 'user' ? ctx.extra.auth.sid : undefined;
    if (!sid) return;
    const sockets = bySession.get(sid);
    sockets?.delete(ctx);
    if (sockets?.size === 0) bySession.delete(sid);
  };

  /** The socket's token is revoked: closed at once, or once its subscriptions have told it and completed. */
  const revoke = (ctx: Ctx, reason: string) => {
    ctx.extra.revoked = true;
    if (Object.keys(ctx.subscriptions).length === 0) {
      close(ctx, reason);
    } else {
      // A sessionRevoked (or revocations) subscription completes on this event and closes the socket in onComplete.
      clearTimeout(ctx.extra.timer);
      ctx.extra.timer = setTimeout(() => close(ctx, reason), REVOKED_CLOSE_DEADLINE_MS);
    }
  };

  /** Whether the client registry refuses the socket's token now (its client disabled, or its secret rotated). */
  const refusedByClient = (auth: VerifiedClaims | null | undefined, changed?: ClientChangedEvent): boolean => {
    if (!auth) return false;
    const service = auth.kind === 'service';
    // The change itself decides too: this listener may hear it before the registry has applied it.
    if (changed && (changed.disabled || (service && auth.iat < revocationCutoffSeconds(changed.tokensRevokedAt)))) {
      return true;
    }
    return deps.services?.clients.refuses(auth.client_id, auth.iat, service) !== undefined;
  };

  const unsubscribe = deps.bus.subscribe((event) => {
    for (const sid of event.sessionIds) {
      for (const ctx of bySession.get(sid) ?? []) revoke(ctx, 'Session revoked');
    }
  });
  const unsubscribeClients = deps.bus.subscribeClientChanged((event) => {
    for (const ctx of byClient.get(event.id) ?? []) {
      if (!ctx.extra.revoked && refusedByClient(ctx.extra.auth, event)) revoke(ctx, 'Client revoked');
    }
  });

  // Operations running per session, across every socket of this instance: one token opening many sockets gets no
  // more than one socket's worth, so memory per stolen or registered token stays bounded.
  const perSession = new Map<string, number>();
  const tooMany = (what: string) =>
    new GraphQLError(`Too many operations on this ${what}: at most ${limits.maxOperations} at once`, {
      extensions: { code: 'RATE_LIMITED' },
    });

  /** Takes one of `sid`'s places (false when none is left); `release` gives it back. */
  const claimSessionPlace = (sid: string, onRelease: (release: () => void) => void): boolean => {
    const running = perSession.get(sid) ?? 0;
    if (running >= limits.maxOperations) return false;
    perSession.set(sid, running + 1);
    onRelease(() => {
      const left = (perSession.get(sid) ?? 1) - 1;
      if (left > 0) perSession.set(sid, left);
      else perSession.delete(sid);
    });
    return true;
  };

  /** A subscribe message's execution arguments, or the errors that refuse it. */
  const prepare = async (
    ctx: Ctx,
    payload: SubscribePayload,
    release: () => void,
    onRelease: (release: () => void) => void,
  ) => {
    if (ctx.extra.revoked || (ctx.extra.auth && ctx.extra.auth.exp * 1000 <= deps.clock.now())) {
      close(ctx as Ctx, ctx.extra.revoked ? 'Token revoked' : 'Token expired');
      // Never an empty list: graphql-ws takes `[]` for an invalid hook result and logs it as an internal error.
      return [toGraphQLError(unauthenticated(ctx.extra.revoked ? 'SESSION_REVOKED' : 'TOKEN_EXPIRED'))];
    }
    // Read on every operation: a registry reloaded from the database (Redis down) changes without a message.
    if (refusedByClient(ctx.extra.auth)) {
      ctx.extra.revoked = true;
      close(ctx as Ctx, 'Client revoked');
      return [toGraphQLError(unauthenticated('CLIENT_DISABLED'))];
    }
    let auth = ctx.extra.auth ?? null;
    const header = auth ? undefined : operationAuthorization(payload.extensions);
    if (header !== undefined) {
      // GraphiQL sends its Headers tab with each operation, not in connection_init: on an anonymous
      // connection an operation may carry its own token, verified like any other.
      try {
        auth = await authenticate(header, deps.verify);
      } catch (error) {
        if (error instanceof AuthError) return [toGraphQLError(error)];
        throw error;
      }
    }
    if (auth?.kind === 'user' && !claimSessionPlace(auth.sid, onRelease)) return [tooMany('session')];
    const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
      ...ctx,
      req: ctx.extra.request,
      socket: ctx.extra.socket,
      params: payload,
      socketAuth: auth,
    });
    let document: DocumentNode;
    try {
      document = parse(payload.query);
    } catch (error) {
      // A syntax error is the client's; graphql-ws would log it with the document it quotes.
      if (error instanceof GraphQLError) return [withoutQuotedValues(error)];
      throw error;
    }
    if (!getOperationAST(document, payload.operationName)) {
      return [new GraphQLError('Unable to identify operation', { extensions: { code: 'BAD_USER_INPUT' } })];
    }
    ctx.extra.ending ??= new AbortController();
    const ending = ctx.extra.ending;
    const args = {
      schema,
      operationName: payload.operationName,
      document,
      variableValues: payload.variables,
      contextValue: await contextFactory(),
      rootValue: { execute, subscribe, release, ending: ending.signal },
    };
    const errors = validate(args.schema, args.document);
    return errors.length ? errors : args;
  };

  useServer<{ authorization?: unknown }, Extra>(
    {
      connectionInitWaitTimeout: limits.connectionInitTimeoutMs,
      execute: async (args) => {
        const root = args.rootValue as EnvelopRoot;
        try {
          return await inScope(root, () => root.execute(args));
        } finally {
          root.release();
        }
      },
      subscribe: async (args) => {
        const root = args.rootValue as EnvelopRoot;
        let result: unknown;
        try {
          result = await inScope(root, () => root.subscribe(args));
        } catch (error) {
          root.release();
          throw error;
        }
        if (!isStream(result)) {
          root.release();
          return result as never;
        }
        const onChange = deps.onSubscriptionChange;
        const released = tracked(endOnAbort(result, root.ending), (delta) => delta === -1 && root.release());
        return (onChange ? tracked(released, onChange) : released) as never;
      },
      // Errors over WebSocket pass the same mask as over HTTP: no internal detail, no value the client sent.
      onNext: (ctx, id, _payload, _args, result) => {
        const errors = (result as ExecutionResult).errors;
        if (!errors) return undefined;
        operationLog.failed(ctx.extra.socket, id);
        const logger = operationLog.scope(ctx.extra.socket, id)?.logger;
        return { ...result, errors: mask(errors, logger).map((error) => error.toJSON()) };
      },
      onError: (ctx, id, _payload, errors) => {
        const masked = mask(errors, operationLog.scope(ctx.extra.socket, id)?.logger).map((error) => error.toJSON());
        // An operation refused before it ran ends here (graphql-ws calls no onComplete for it).
        operationLog.failed(ctx.extra.socket, id);
        operationLog.end(ctx.extra.socket, id);
        return masked;
      },
      onConnect: async (ctx) => {
        const authorization = ctx.connectionParams?.authorization;
        // Anything but a string (or nothing) is a malformed credential, refused like an invalid token.
        if (authorization !== undefined && typeof authorization !== 'string') return false;
        try {
          ctx.extra.auth = await authenticate(typeof authorization === 'string' ? authorization : null, deps.verify);
        } catch (error) {
          if (error instanceof AuthError) return false;
          throw error;
        }
        const auth = ctx.extra.auth;
        if (auth) {
          if (auth.kind === 'user')
            bySession.set(auth.sid, (bySession.get(auth.sid) ?? new Set<Ctx>()).add(ctx as Ctx));
          byClient.set(auth.client_id, (byClient.get(auth.client_id) ?? new Set<Ctx>()).add(ctx as Ctx));
          const untilExpiry = auth.exp * 1000 - deps.clock.now();
          ctx.extra.timer = setTimeout(() => expire(ctx as Ctx), Math.max(0, untilExpiry));
        }
        return true;
      },
      onSubscribe: async (ctx, id, payload) => {
        const scope = operationLog.start(ctx.extra.socket, ctx.extra.request, id);
        // Counted before the first await: a burst of subscribe messages cannot all pass the check together.
        const running = ctx.extra.operations ?? 0;
        if (running >= limits.maxOperations) return [tooMany('WebSocket')];
        ctx.extra.operations = running + 1;
        const releasers: (() => void)[] = [
          () => {
            ctx.extra.operations = (ctx.extra.operations ?? 1) - 1;
          },
        ];
        let claimed = true;
        const release = () => {
          if (claimed) for (const releaser of releasers) releaser();
          claimed = false;
        };
        try {
          const prepared = await prepare(ctx as Ctx, payload, release, (releaser) => releasers.push(releaser));
          if (Array.isArray(prepared)) release();
          else {
            const operation = getOperationAST(prepared.document, prepared.operationName);
            scope.operationName = operation?.name?.value.slice(0, 100);
            scope.operationType = operation?.operation;
            (prepared.rootValue as EnvelopRoot).scope = scope;
          }
          return prepared;
        } catch (error) {
          release();
          return mask(
            [
              error instanceof GraphQLError
                ? error
                : new GraphQLError('Unexpected error.', { originalError: error as Error }),
            ],
            scope.logger,
          );
        }
      },
      onComplete: (ctx, id) => {
        operationLog.end(ctx.extra.socket, id);
        // Runs just before the complete message is sent; the close frame is queued after it.
        const others = Object.keys(ctx.subscriptions).filter((key) => key !== id);
        // A revocations subscription ends when the registry, reloaded without a message, refuses its token.
        if (!ctx.extra.revoked && refusedByClient(ctx.extra.auth)) ctx.extra.revoked = true;
        if (ctx.extra.revoked && others.length === 0) setTimeout(() => close(ctx as Ctx, 'Token revoked'), 0);
        else if (ctx.extra.expired && others.length === 0) setTimeout(() => close(ctx as Ctx, 'Token expired'), 0);
      },
      onClose: (ctx) => forget(ctx as Ctx),
    },
    wss,
  );

  return {
    /** Closes every socket with 1001; one whose client has not answered the close by `deadline` is cut. */
    async close(deadline = Date.now() + 10_000) {
      unsubscribe();
      unsubscribeClients();
      for (const client of wss.clients) client.close(1001, 'Server shutting down');
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        wss.close(() => resolve());
        timer = setTimeout(
          () => {
            for (const client of wss.clients) client.terminate();
          },
          Math.max(0, deadline - Date.now()),
        );
      });
      clearTimeout(timer);
    },
  };
}
