// node:http + graphql-yoga (HTTP and SSE) + graphql-ws (websocket.ts) on one port and one path (/graphql).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import type { GraphQLSchema } from 'graphql';
import { createYoga, type Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';
import { createCall } from '../call.ts';
import type { ClientCredentialsGrant } from '../clients/client-credentials.ts';
import type { Clock } from '../clock.ts';
import type { GraphQLLimitsConfig, RefreshCookieConfig, WebSocketLimitsConfig } from '../config.ts';
import type { Em, Orm } from '../db/orm.ts';
import { AuthError } from '../errors.ts';
import type { RevocationBus } from '../events/revocation-bus.ts';
import { yogaLogging } from '../log.ts';
import type { Context, Services } from '../schema/context.ts';
import { createMaskError, toGraphQLError } from '../schema/errors.ts';
import type { VerifiedClaims } from '../tokens/claims.ts';
import type { KeyStore } from '../tokens/key-store.ts';
import type { AccessTokenVerifier } from '../tokens/verify.ts';
import { authenticate } from './authenticate.ts';
import { GRAPHIQL_EXAMPLE } from './graphiql-example.ts';
import type { Metrics } from './metrics.ts';
import { corsOptions, createOriginPolicy, type OriginSource } from './origins.ts';
import { CSRF_HEADERS, createRefreshCookies } from './refresh-cookie.ts';
import { requestMeta } from './request-meta.ts';
import { createRequestScopes } from './request-scope.ts';
import { renderGraphiQL, useGraphiQLAssets } from './use-graphiql.ts';
import { useGraphQLLimits } from './use-graphql-limits.ts';
import { useInputIntegrity } from './use-input-integrity.ts';
import { useMetrics } from './use-metrics.ts';
import { useOneCredentialField } from './use-one-credential-field.ts';
import { type ReadinessProbes, useReadiness } from './use-readiness.ts';
import { useRequestErrors } from './use-request-errors.ts';
import { useRequestParsing } from './use-request-parsing.ts';
import { useRequestScope } from './use-request-scope.ts';
import { graphiqlCsp, useSecurityHeaders } from './use-security-headers.ts';
import { useShutdown } from './use-shutdown.ts';
import { useTokenEndpoint } from './use-token-endpoint.ts';
import { useWellKnown } from './use-well-known.ts';
import { attachWebSocketServer } from './websocket.ts';

export interface HttpDeps {
  readonly schema: GraphQLSchema;
  readonly orm: Orm;
  readonly services: Services;
  readonly verify: AccessTokenVerifier;
  /** Whether this instance knows `sessionId` is revoked (its refresh cookie is then cleared by any answer). */
  readonly isRevoked: (sessionId: string) => boolean;
  readonly bus: RevocationBus;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Served on POST /oauth/token (client credentials). */
  readonly clientCredentials: ClientCredentialsGrant;
  /** Served on GET /metrics (behind METRICS_TOKEN when set) and fed by every request. */
  readonly metrics: Metrics;
  readonly metricsToken: string | undefined;
  /** Published as the JWKS and in the RFC 8414 metadata. */
  readonly keys: KeyStore;
  readonly wellKnown: { readonly issuer: string; readonly publicUrl: string };
  /** What /readyz checks: 503 without a required dependency, "degraded" without an optional one. */
  readonly readiness: ReadinessProbes;
  readonly graphiql: boolean;
  /** Proxies trusted to append to X-Forwarded-For (0: the socket address is the client). */
  readonly trustProxy: number;
  readonly corsOrigins: readonly string[];
  /** More origins allowed to call with credentials, read on every decision (e.g. enabled clients' allowedOrigins). */
  readonly originSources?: readonly OriginSource[];
  /** Production: loopback origins are not allowed by default. */
  readonly production: boolean;
  readonly refreshCookie: RefreshCookieConfig;
  /** Introspection on (development) or refused (production unless INTROSPECTION=true). */
  readonly introspection: boolean;
  readonly graphqlLimits: GraphQLLimitsConfig;
  /** Per-socket limits; its message size also bounds an HTTP request body. */
  readonly webSocket: WebSocketLimitsConfig;
  /** https:// public URL: responses carry Strict-Transport-Security. */
  readonly hsts: boolean;
  /** Told +1/-1 as WebSocket subscriptions open and end (metrics). */
  readonly onSubscriptionChange?: (delta: 1 | -1) => void;
  /** A span per GraphQL operation (telemetry/), when OTEL_EXPORTER_OTLP_ENDPOINT is set. */
  readonly tracing?: Plugin | undefined;
}

interface ServerContext {
  /** Absent for operations over WebSocket. */
  request?: Request;
  req?: IncomingMessage;
  /** Set for operations over WebSocket: the claims verified at connection_init. */
  socketAuth?: VerifiedClaims | null;
}

export interface HttpServer {
  readonly server: Server;
  /**
   * Stops accepting, ends SSE streams, closes WebSockets with 1001, lets in-flight requests finish for up to
   * `graceMs` (default 10 s), then closes whatever connection is left.
   */
  close(graceMs?: number): Promise<void>;
}

export function createHttpServer(deps: HttpDeps): HttpServer {
  const shutdown = new AbortController();
  const scopes = createRequestScopes(deps.logger);
  const scopedLogger = () => scopes.current()?.logger ?? deps.logger;
  // Errors the mask has logged (with the request id): Yoga would log each of them a second time.
  const logged = new WeakSet<object>();
  let graphiqlPageCsp: string | undefined;
  const origins = createOriginPolicy({
    production: deps.production,
    publicUrl: deps.wellKnown.publicUrl,
    sources: [() => deps.corsOrigins, ...(deps.originSources ?? [])],
  });
  const refreshCookies = createRefreshCookies({
    settings: deps.refreshCookie,
    origins,
    clock: deps.clock,
    bus: deps.bus,
    isRevoked: deps.isRevoked,
    scope: () => scopes.current(),
  });
  const yoga = createYoga<ServerContext, Context>({
    schema: deps.schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/healthz',
    landingPage: false,
    graphiql: deps.graphiql
      ? { title: 'Auth server', subscriptionsProtocol: 'WS', defaultQuery: GRAPHIQL_EXAMPLE }
      : false,
    renderGraphiQL: (options) => {
      const html = renderGraphiQL(options);
      graphiqlPageCsp ??= graphiqlCsp(html);
      return html;
    },
    maskedErrors: { maskError: createMaskError(deps.logger, { current: () => scopes.current()?.logger, logged }) },
    // Credentialed CORS for the allowed origins (origins.ts); every other origin gets no CORS header.
    cors: corsOptions(origins, '/graphql'),
    // One size limit for a request on either transport (413 over HTTP, 1009 over WebSocket): useRequestParsing
    // enforces it over HTTP, more cheaply than Yoga's own (which wraps every body in a counting stream).
    maxRequestBodySize: false,
    // Batched (array) requests stay off: each would be another credential check in one request.
    batching: false,
    // Never String(error): a GraphQL error prints its document, literals included.
    logging: yogaLogging(
      scopedLogger,
      (error) => typeof error === 'object' && error !== null && logged.has(error),
      deps.logger,
    ),
    // Every plugin of the server, in the order Yoga runs their hooks: a request is refused by the earliest
    // plugin that can tell, before any later one spends work on it.
    plugins: [
      // 1. Headers first, so every answer carries them, refusals by the plugins below included.
      useSecurityHeaders({ graphiqlCsp: () => graphiqlPageCsp, hsts: deps.hsts }),
      // 2. GraphiQL's own script, styles and workers, from this server rather than a CDN (static files).
      ...(deps.graphiql ? [useGraphiQLAssets()] : []),
      // 3. Before parsing: requests a browser could send cross-site without a preflight (GET, forms, text/plain)
      //    need a header that only a preflighted request can carry. Bearer tokens travel in one, so they count.
      useCSRFPrevention({ requestHeaders: CSRF_HEADERS }),
      // 4. Parsing the request: a malformed body or parameter is the caller's 400, not our 500.
      useRequestParsing({ maxBodyBytes: deps.webSocket.maxMessageBytes }),
      // 5. Validation: its errors answered without the values they quote; document limits; one credential check.
      useRequestErrors(),
      ...useGraphQLLimits({ limits: deps.graphqlLimits, introspection: deps.introspection }),
      useOneCredentialField(),
      // 6. Before execution: every text argument well-formed, every ID of a shape we issue.
      useInputIntegrity(),
      // 7. Observers, after the refusals above have had their say: the log line's operation name, the metrics,
      //    the trace.
      useRequestScope(scopes),
      ...(deps.tracing ? [deps.tracing] : []),
      useMetrics(deps.metrics, { token: deps.metricsToken }),
      // 8. The refresh cookie that resolvers set or cleared, or that a revocation in this request ended.
      refreshCookies.plugin,
      // 9. Routes that are not GraphQL: JWKS and metadata, the token endpoint, readiness.
      useWellKnown(deps.keys, deps.wellKnown),
      useTokenEndpoint(deps.clientCredentials, { trustProxy: deps.trustProxy, logger: scopedLogger }),
      useReadiness(deps.readiness),
      // 10. Shutdown ends every subscription stream, so an SSE response finishes rather than being cut.
      useShutdown(shutdown.signal),
    ],
    context: async (initial) => {
      const { request, req, socketAuth } = initial;
      let claims = socketAuth;
      if (claims === undefined) {
        try {
          claims = await authenticate(request?.headers.get('authorization'), deps.verify);
        } catch (error) {
          throw error instanceof AuthError ? toGraphQLError(error) : error;
        }
      }
      // The EntityManager is forked on first use: many requests (a token-only `me`) never use it.
      const meta = requestMeta(req, request?.headers, deps.trustProxy);
      // A user's token makes the caller that user; a service token (client credentials) only grants its scopes.
      const auth = claims?.kind === 'user' ? claims : null;
      return {
        auth,
        service: claims?.kind === 'service' ? claims : null,
        call: createCall(() => deps.orm.em.fork() as Em, meta, auth),
        services: deps.services,
        signedIn: new Map<string, string>(),
        refreshCookie: refreshCookies.forRequest(request, auth?.sid),
      } satisfies Context;
    },
  });

  const server = createServer(scopes.wrap(yoga));
  const websocket = attachWebSocketServer(server, yoga, { ...deps, scopes });

  return {
    server,
    async close(graceMs = 10_000) {
      const deadline = Date.now() + graceMs;
      // Stop accepting first; the callback runs once every connection has ended.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      shutdown.abort();
      await websocket.close(deadline);
      refreshCookies.close();
      // In-flight requests finish; a keep-alive connection is closed as soon as it is idle.
      const idle = setInterval(() => server.closeIdleConnections(), 50);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        closed,
        new Promise((resolve) => {
          timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        }),
      ]);
      clearInterval(idle);
      clearTimeout(timer);
      server.closeAllConnections();
      await closed;
      await yoga.dispose();
    },
  };
}
