// One log scope per WebSocket operation, like an HTTP request's: its own request id (the socket's beside it as
// connectionId), errors it logs carry both, and one access line when it ends (name, type, outcome, duration).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { type RequestScope, requestIdOf } from './request-scope.ts';

interface Operation {
  readonly scope: RequestScope;
  readonly started: number;
  failed: boolean;
}

export interface WsOperationLog {
  /** Opens the scope of operation `id` on `socket`. */
  start(socket: object, request: IncomingMessage, id: string): RequestScope;
  scope(socket: object, id: string): RequestScope | undefined;
  /** Marks the operation as answered with errors. */
  failed(socket: object, id: string): void;
  /** Writes the access line (once, however often it is called) and forgets the operation. */
  end(socket: object, id: string): void;
}

export function createWsOperationLog(logger: Logger): WsOperationLog {
  // Weak: a socket that goes away takes its operations and its id with it.
  const connections = new WeakMap<object, { id: string; operations: Map<string, Operation> }>();
  const connection = (socket: object, request: IncomingMessage) => {
    let found = connections.get(socket);
    if (!found) {
      found = { id: requestIdOf(request.headers['x-request-id']), operations: new Map() };
      connections.set(socket, found);
    }
    return found;
  };
  return {
    start(socket, request, id) {
      const { id: connectionId, operations } = connection(socket, request);
      const requestId = randomUUID();
      const scope: RequestScope = {
        requestId,
        logger: logger.child({ requestId, connectionId }),
        operationName: undefined,
        operationType: undefined,
      };
      operations.set(id, { scope, started: performance.now(), failed: false });
      return scope;
    },
    scope: (socket, id) => connections.get(socket)?.operations.get(id)?.scope,
    failed(socket, id) {
      const operation = connections.get(socket)?.operations.get(id);
      if (operation) operation.failed = true;
    },
    end(socket, id) {
      const operations = connections.get(socket)?.operations;
      const operation = operations?.get(id);
      if (!operation) return;
      operations?.delete(id);
      const { scope } = operation;
      scope.logger.info(
        {
          transport: 'websocket',
          path: '/graphql',
          operationName: scope.operationName,
          operationType: scope.operationType,
          outcome: operation.failed ? 'error' : 'success',
          durationMs: Math.round((performance.now() - operation.started) * 10) / 10,
        },
        'request',
      );
    },
  };
}
