// An urql exchange over the AuthClient: operations are fetched with its authenticated fetch, which sends the
// bearer token (refreshed first when it is about to expire) and the CSRF header (GET queries included), and
// retries once after a refresh on TOKEN_EXPIRED.
import { type Exchange, makeOperation, mapExchange } from '@urql/core';
import type { AuthClient } from './index.ts';

/**
 * The exchange that authenticates urql's operations with `auth` (anonymous ones and GET queries pass CSRF
 * prevention too). Put it before fetchExchange: `exchanges: [cacheExchange, authExchange(auth), fetchExchange]`.
 */
export function authExchange(auth: AuthClient): Exchange {
  return mapExchange({
    onOperation: (operation) =>
      operation.kind === 'teardown'
        ? operation
        : makeOperation(operation.kind, operation, { ...operation.context, fetch: auth.fetch }),
  });
}
