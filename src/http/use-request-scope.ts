// Names the GraphQL operation on the request's log line (request-scope.ts), from the parsed document, so only a
// real GraphQL name (never caller-chosen text) is logged.
import { type DocumentNode, getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { RequestScope, RequestScopes } from './request-scope.ts';

export function useRequestScope(scopes: RequestScopes): Plugin {
  return {
    onExecute({ args }) {
      nameOperation(scopes.current(), args.document, args.operationName);
    },
    onSubscribe({ args }) {
      nameOperation(scopes.current(), args.document, args.operationName);
    },
  };
}

function nameOperation(scope: RequestScope | undefined, document: DocumentNode, name: string | null | undefined) {
  if (scope) scope.operationName = getOperationAST(document, name)?.name?.value.slice(0, 100);
}
