// An Apollo Client link over the AuthClient: sends the bearer token (refreshed first when it is about to expire)
// and the CSRF header, and when an answer says TOKEN_EXPIRED, refreshes once (shared with concurrent operations).
import { ApolloLink } from '@apollo/client';
import { from, mergeMap, type Observable, of } from 'rxjs';
import { type AuthClient, CSRF_HEADER, type GraphQLErrorLike, unauthenticatedReason } from './index.ts';

/**
 * The link that authenticates Apollo Client's operations with `auth` (anonymous ones pass CSRF prevention too).
 * Put it before the terminating link: `ApolloLink.from([createAuthLink(auth), new HttpLink({ uri })])`.
 */
export function createAuthLink(auth: AuthClient): ApolloLink {
  return new ApolloLink((operation, forward) => {
    const send = (token: string | null): Observable<ApolloLink.Result> => {
      operation.setContext(({ headers }: { headers?: Record<string, string> }) => {
        // The CSRF header on every operation, signed in or not (GET queries included).
        const next: Record<string, string> = { ...headers, [CSRF_HEADER]: 'graphql-auth-client' };
        if (token) next.authorization = `Bearer ${token}`;
        else delete next.authorization;
        return { headers: next };
      });
      return forward(operation);
    };
    return from(auth.accessToken()).pipe(
      mergeMap((token) =>
        send(token).pipe(
          mergeMap((result) => {
            const reason = unauthenticatedReason((result as { errors?: GraphQLErrorLike[] }).errors);
            if (!token || !reason) return of(result);
            return from(auth.recover(reason, token)).pipe(mergeMap((next) => (next ? send(next) : of(result))));
          }),
        ),
      ),
    );
  });
}
