// node:http + graphql-yoga (HTTP and SSE) + graphql-ws (websocket.ts) on one port and one path (/graphql).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { GraphQLSchema } from 'graphql';
import { createYoga, type Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { Orm } from '../db/orm.ts';
import { AuthError } from '../errors.ts';
import type { RevocationBus } from '../events/revocation-bus.ts';
import type { Context, Services } from '../schema/context.ts';
import { createMaskError, toGraphQLError } from '../schema/errors.ts';
import type { AccessClaims } from '../tokens/claims.ts';
import type { AccessTokenVerifier } from '../tokens/verify.ts';
import { authenticate } from './authenticate.ts';
import { requestMeta } from './request-meta.ts';
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
  readonly trustProxy: boolean;
  readonly corsOrigins: readonly string[];
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
  const yoga = createYoga<ServerContext, Context>({
    schema: deps.schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/healthz',
    landingPage: false,
    graphiql: deps.graphiql ? { title: 'Auth server', subscriptionsProtocol: 'WS' } : false,
    maskedErrors: { maskError: createMaskError(deps.logger) },
    cors: deps.corsOrigins.length
      ? { origin: [...deps.corsOrigins], credentials: false, allowedHeaders: ['authorization', 'content-type'] }
      : false,
    logging: {
      debug: (...args) => deps.logger.debug(args.map(String).join(' ')),
      info: (...args) => deps.logger.info(args.map(String).join(' ')),
      warn: (...args) => deps.logger.warn(args.map(String).join(' ')),
      error: (...args) => deps.logger.error(args.map(String).join(' ')),
    },
    plugins: deps.plugins,
    context: async ({ request, req, socketAuth }) => {
      let auth = socketAuth;
      if (auth === undefined) {
        try {
          auth = await authenticate(request?.headers.get('authorization'), deps.verify);
        } catch (error) {
          throw error instanceof AuthError ? toGraphQLError(error) : error;
        }
      }
      let em: Context['em'] | undefined;
      return {
        auth,
        meta: requestMeta(req, request?.headers, deps.trustProxy),
        services: deps.services,
        signedIn: new Map<string, string>(),
        get em() {
          em ??= deps.orm.em.fork() as Context['em'];
          return em;
        },
      };
    },
  });

  const server = createServer(yoga);
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
