// node:http + graphql-yoga (HTTP and SSE) + graphql-ws (websocket.ts) on one port and one path (/graphql).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import type { GraphQLSchema } from 'graphql';
import { createYoga, type Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';
import { createCall } from '../call.ts';
import type { Clock } from '../clock.ts';
import type { GraphQLLimitsConfig, WebSocketLimitsConfig } from '../config.ts';
import type { Em, Orm } from '../db/orm.ts';
import { AuthError } from '../errors.ts';
import type { RevocationBus } from '../events/revocation-bus.ts';
import { yogaLogging } from '../log.ts';
import type { Context, Services } from '../schema/context.ts';
import { createMaskError, toGraphQLError } from '../schema/errors.ts';
import type { AccessClaims } from '../tokens/claims.ts';
import type { AccessTokenVerifier } from '../tokens/verify.ts';
import { authenticate } from './authenticate.ts';
import { requestMeta } from './request-meta.ts';
import { createRequestScopes } from './request-scope.ts';
import { renderGraphiQL, useGraphiQLAssets } from './use-graphiql.ts';
import { useGraphQLLimits } from './use-graphql-limits.ts';
import { useInputIntegrity } from './use-input-integrity.ts';
import { useMalformedParams } from './use-malformed-params.ts';
import { useOneCredentialField } from './use-one-credential-field.ts';
import { useRequestErrors } from './use-request-errors.ts';
import { graphiqlCsp, useSecurityHeaders } from './use-security-headers.ts';
import { attachWebSocketServer } from './websocket.ts';

export interface HttpDeps {
  readonly schema: GraphQLSchema;
  readonly orm: Orm;
  readonly services: Services;
  readonly verify: AccessTokenVerifier;
  readonly bus: RevocationBus;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly plugins: Plugin[];
  readonly graphiql: boolean;
  /** Proxies trusted to append to X-Forwarded-For (0: the socket address is the client). */
  readonly trustProxy: number;
  readonly corsOrigins: readonly string[];
  /** Introspection on (development) or refused (production unless INTROSPECTION=true). */
  readonly introspection: boolean;
  readonly graphqlLimits: GraphQLLimitsConfig;
  /** Per-socket limits; its message size also bounds an HTTP request body. */
  readonly webSocket: WebSocketLimitsConfig;
  /** https:// public URL: responses carry Strict-Transport-Security. */
  readonly hsts: boolean;
  /** Told +1/-1 as WebSocket subscriptions open and end (metrics). */
  readonly onSubscriptionChange?: (delta: 1 | -1) => void;
}

interface ServerContext {
  /** Absent for operations over WebSocket. */
  request?: Request;
  req?: IncomingMessage;
  /** Set for operations over WebSocket: the claims verified at connection_init. */
  socketAuth?: AccessClaims | null;
}

export interface HttpServer {
  readonly server: Server;
  /** Stops accepting, closes WebSockets with 1001, drains in-flight requests. */
  close(): Promise<void>;
}

export function createHttpServer(deps: HttpDeps): HttpServer {
  const scopes = createRequestScopes(deps.logger);
  const scopedLogger = () => scopes.current()?.logger ?? deps.logger;
  // Errors the mask has logged (with the request id): Yoga would log each of them a second time.
  const logged = new WeakSet<object>();
  let graphiqlPageCsp: string | undefined;
  const yoga = createYoga<ServerContext, Context>({
    schema: deps.schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/healthz',
    landingPage: false,
    graphiql: deps.graphiql ? { title: 'Auth server', subscriptionsProtocol: 'WS' } : false,
    renderGraphiQL: (options) => {
      const html = renderGraphiQL(options);
      graphiqlPageCsp ??= graphiqlCsp(html);
      return html;
    },
    maskedErrors: { maskError: createMaskError(deps.logger, { current: () => scopes.current()?.logger, logged }) },
    cors: deps.corsOrigins.length
      ? {
          origin: [...deps.corsOrigins],
          credentials: false,
          allowedHeaders: ['authorization', 'content-type', 'x-graphql-yoga-csrf', 'x-request-id'],
          exposedHeaders: ['x-request-id'],
        }
      : false,
    // One size limit for a request on either transport (413 over HTTP, 1009 over WebSocket).
    maxRequestBodySize: deps.webSocket.maxMessageBytes,
    // Batched (array) requests stay off: each would be another credential check in one request.
    batching: false,
    // Never String(error): a GraphQL error prints its document, literals included.
    logging: yogaLogging(scopedLogger, (error) => typeof error === 'object' && error !== null && logged.has(error)),
    plugins: [
      useSecurityHeaders({ graphiqlCsp: () => graphiqlPageCsp, hsts: deps.hsts }),
      // GraphiQL's own script, styles and workers, from this server rather than a CDN.
      ...(deps.graphiql ? [useGraphiQLAssets()] : []),
      // Requests a browser could send cross-site without a preflight (GET, forms, text/plain) need a header
      // that only a preflighted request can carry. Bearer tokens travel in one, so they count.
      useCSRFPrevention({ requestHeaders: ['x-graphql-yoga-csrf', 'apollo-require-preflight', 'authorization'] }),
      useMalformedParams(),
      useRequestErrors(),
      ...useGraphQLLimits({ limits: deps.graphqlLimits, introspection: deps.introspection }),
      useOneCredentialField(),
      useInputIntegrity(),
      scopes.plugin,
      ...deps.plugins,
    ],
    context: async (initial) => {
      const { request, req, socketAuth } = initial;
      let auth = socketAuth;
      if (auth === undefined) {
        try {
          auth = await authenticate(request?.headers.get('authorization'), deps.verify);
        } catch (error) {
          throw error instanceof AuthError ? toGraphQLError(error) : error;
        }
      }
      // The EntityManager is forked on first use: many requests (a token-only `me`) never use it.
      const meta = requestMeta(req, request?.headers, deps.trustProxy);
      return {
        auth,
        call: createCall(() => deps.orm.em.fork() as Em, meta, auth),
        services: deps.services,
        signedIn: new Map<string, string>(),
      } satisfies Context;
    },
  });

  const server = createServer(scopes.wrap(yoga));
  const websocket = attachWebSocketServer(server, yoga, deps);

  return {
    server,
    async close() {
      await websocket.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await yoga.dispose();
    },
  };
}
