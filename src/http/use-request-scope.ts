// Names the GraphQL operation (its name, and its type, which is all an anonymous one has) on the request's log
// line (request-scope.ts), from the parsed document, so only a real GraphQL name (never caller-chosen text) is logged.
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
  if (!scope) return;
  const operation = getOperationAST(document, name);
  scope.operationName = operation?.name?.value.slice(0, 100);
  scope.operationType = operation?.operation;
}
