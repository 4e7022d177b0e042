// Per-request scope for logs: a request id (a caller's safe X-Request-Id, or a new UUID) sent back in the
// X-Request-Id header, a child logger that carries it (used by the error mask), and one log line per request
// with method, path, operation name and type (use-request-scope.ts), status and duration (never headers, query
// strings or variables).
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

export interface RequestScope {
  readonly requestId: string;
  readonly logger: Logger;
  /** The executed operation's name, when it has one. */
  operationName: string | undefined;
  /** query, mutation or subscription: what names an anonymous operation. */
  operationType?: string | undefined;
}

/** What a caller may choose as its request id: short, and nothing a log viewer could misread. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

export function requestIdOf(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && SAFE_REQUEST_ID.test(value) ? value : randomUUID();
}

export interface RequestScopes {
  /** The scope of the request whose code is running, if any. */
  current(): RequestScope | undefined;
  /** Wraps the node:http listener: every request runs inside its scope and is logged when it ends. */
  wrap(listener: RequestListener): RequestListener;
  /** Runs `work` inside `scope` (a WebSocket operation's: websocket.ts logs its own access line). */
  run<T>(scope: RequestScope, work: () => T): T;
}

export function createRequestScopes(logger: Logger): RequestScopes {
  const storage = new AsyncLocalStorage<RequestScope>();
  return {
    current: () => storage.getStore(),
    wrap: (listener) => (req: IncomingMessage, res: ServerResponse) => {
      const requestId = requestIdOf(req.headers['x-request-id']);
      // The child logger is made when something logs (most requests log only their access line, below).
      let child: Logger | undefined;
      const scope: RequestScope = {
        requestId,
        get logger() {
          child ??= logger.child({ requestId });
          return child;
        },
        operationName: undefined,
      };
      res.setHeader('x-request-id', requestId);
      const started = performance.now();
      res.once('close', () => {
        if (!logger.isLevelEnabled('info')) return;
        scope.logger.info(
          {
            method: req.method,
            path: (req.url ?? '').split('?')[0]?.slice(0, 200),
            operationName: scope.operationName,
            operationType: scope.operationType,
            status: res.statusCode,
            durationMs: Math.round((performance.now() - started) * 10) / 10,
          },
          'request',
        );
      });
      storage.run(scope, () => listener(req, res));
    },
    run: (scope, work) => storage.run(scope, work),
  };
}
