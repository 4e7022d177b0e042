// Putting verified claims on a request: a graphql-yoga/envelop plugin (context.auth) and a framework-free
// authenticate() for Express, Fastify or Hono. Structural types only: no GraphQL server is a dependency.
import type { VerifiedClaims } from './claims.ts';
import { TokenVerificationError } from './errors.ts';

/** Anything with `verify(token)`: a {@link TokenVerifier} or the testing one. */
export interface Verifies {
  verify(token: string): Promise<VerifiedClaims>;
}

/** The context `useTokenVerifier` adds: the token's claims, or `null` for a request without a token. */
export interface TokenVerifierContext {
  readonly auth: VerifiedClaims | null;
}

/**
 * The claims of `Authorization: Bearer <token>`, or `null` when the header is absent. Rejects with a
 * {@link TokenVerificationError} (reason INVALID_TOKEN for a header that is not a Bearer token).
 */
export async function authenticate(
  verifier: Verifies,
  authorizationHeader: string | null | undefined,
): Promise<VerifiedClaims | null> {
  if (authorizationHeader === undefined || authorizationHeader === null || authorizationHeader === '') return null;
  if (typeof authorizationHeader !== 'string') throw new TokenVerificationError('INVALID_TOKEN');
  const match = /^Bearer +([^\s]+) *$/i.exec(authorizationHeader);
  if (!match?.[1]) throw new TokenVerificationError('INVALID_TOKEN');
  return verifier.verify(match[1]);
}

type Headers = { get(name: string): string | null } | Record<string, string | string[] | undefined>;

/** The Authorization of an HTTP request (Fetch `request`, Node `req`) or of a graphql-ws `connection_init`. */
function authorizationOf(context: Record<string, unknown>): string | null | undefined {
  const request = (context.request ?? context.req) as { headers?: Headers } | undefined;
  const headers = request?.headers;
  if (headers && typeof (headers as { get?: unknown }).get === 'function')
    return (headers as { get(name: string): string | null }).get('authorization');
  if (headers) {
    const value = (headers as Record<string, string | string[] | undefined>).authorization;
    if (value !== undefined) return Array.isArray(value) ? value.join(',') : value;
  }
  // graphql-ws over Yoga: the connection_init payload (API.md: `{ authorization: 'Bearer …' }`).
  const params = context.connectionParams as Record<string, unknown> | undefined;
  const fromParams = params?.authorization ?? params?.Authorization;
  return fromParams === undefined ? undefined : (fromParams as string);
}

type GraphQLErrorClass = new (message: string, options: { extensions: Record<string, unknown> }) => Error;

/** The envelop plugin shape (structural, so any graphql-yoga 5 or envelop 5 accepts it). */
export interface TokenVerifierPlugin {
  onContextBuilding(payload: {
    context: Record<string, unknown>;
    extendContext(extension: TokenVerifierContext): void;
  }): Promise<void>;
}

/**
 * A graphql-yoga/envelop plugin: verifies the `Authorization` header once per request and puts the claims on the
 * context as `context.auth` (`null` without the header). A bad token is a GraphQL error with
 * `extensions: { code: 'UNAUTHENTICATED', reason }`, never an anonymous request.
 */
export function useTokenVerifier(verifier: Verifies): TokenVerifierPlugin {
  // A GraphQLError (the one the server uses) passes Yoga's error masking; `graphql` is a peer of graphql-ws, so
  // it is installed wherever this package is, and it is loaded only when the plugin is used.
  let graphqlError: Promise<GraphQLErrorClass | undefined> | undefined;
  const errorClass = () => {
    graphqlError ??= import('graphql').then(
      (module) => module.GraphQLError as unknown as GraphQLErrorClass,
      () => undefined,
    );
    return graphqlError;
  };
  return {
    async onContextBuilding({ context, extendContext }) {
      // Once per request: a context that already holds the claims (batched operations, a second build) is kept.
      if (context.auth !== undefined) return;
      try {
        extendContext({ auth: await authenticate(verifier, authorizationOf(context)) });
      } catch (error) {
        if (!(error instanceof TokenVerificationError)) throw error;
        const GraphQLError = await errorClass();
        if (!GraphQLError) throw error;
        throw new GraphQLError(error.message, { extensions: { code: error.code, reason: error.reason } });
      }
    },
  };
}
