// The one place where domain errors become GraphQL errors with `extensions.code`;
// anything unexpected is masked (no stack, SQL or secret reaches a client) and logged; request errors are
// answered without the values they quote (a variable's or a document literal's: it may be a password).
import { GraphQLError } from 'graphql';
import type { Logger } from 'pino';
import { AuthError, unauthenticated } from '../errors.ts';
import { withoutValues } from '../redact.ts';

export function toGraphQLError(error: AuthError, source?: GraphQLError): GraphQLError {
  return new GraphQLError(error.message, {
    nodes: source?.nodes,
    path: source?.path,
    extensions: { code: error.code, ...error.details },
  });
}

/** The AuthError an error was raised from (by a resolver, a scope check or a scalar of ours), if any. */
function domainErrorOf(error: Error | undefined): AuthError | undefined {
  for (let current = error; current; current = current instanceof GraphQLError ? current.originalError : undefined) {
    if (current instanceof AuthError) return current;
  }
  return undefined;
}

/**
 * The extensions the client will see on `error` (`code`, `reason`, `field`…), also before the mask has run: those of
 * the domain error it was raised from, or its own.
 */
export function extensionsOf(error: GraphQLError): Readonly<Record<string, unknown>> {
  const domain = domainErrorOf(error.originalError);
  return domain ? { code: domain.code, ...domain.details } : error.extensions;
}

/**
 * The same request error as the client gets it: with the code (and details) of the domain error it came from,
 * and without the values its message quoted. The error itself when there is nothing to change.
 */
export function withoutQuotedValues<T extends GraphQLError>(error: T): T | GraphQLError {
  const domain = domainErrorOf(error.originalError);
  const literal = /^(Expected value of type "[^"]+"), found /.exec(error.message);
  // A literal refused by a scalar of ours: the literal goes, our reason stays.
  const message = literal && domain ? `${literal[1]}; ${withoutValues(domain.message)}` : withoutValues(error.message);
  if (message === error.message && (!domain || error.extensions.code === domain.code)) return error;
  return new GraphQLError(message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    extensions: domain ? { ...error.extensions, code: domain.code, ...domain.details } : error.extensions,
  });
}

export interface MaskErrorOptions {
  /** The logger of the request being answered (it carries the request id), when there is one. */
  readonly current?: () => Logger | undefined;
  /** Receives every error this mask has logged, so that nothing else logs it again. */
  readonly logged?: WeakSet<object>;
}

/**
 * Yoga's maskError: a domain error (AuthError, however graphql-js wrapped it) is answered with its code; parse,
 * validation and coercion errors describe the request and pass, without the values they quote; anything else
 * is masked and logged.
 */
export function createMaskError(logger: Logger, options: MaskErrorOptions = {}) {
  const answered = (error: GraphQLError, answer: GraphQLError): GraphQLError => {
    if (answer !== error) options.logged?.add(error);
    return answer;
  };
  return (error: unknown, message: string): Error => {
    if (error instanceof GraphQLError) {
      const { originalError } = error;
      // Yoga logs every error whose mask differs from it: a request error is the client's, not ours to log.
      if (!originalError) return answered(error, withoutQuotedValues(error));
      // A resolver's or a scope check's AuthError, wrapped by graphql-js: its code and details, mapped here only.
      if (originalError instanceof AuthError) return toGraphQLError(originalError, error);
      if (
        originalError instanceof GraphQLError &&
        (!originalError.originalError || originalError.originalError instanceof AuthError)
      ) {
        // A variable's coercion error: the inner error says why, with its code when it is ours.
        return answered(error, withoutQuotedValues(originalError));
      }
    }
    if (error instanceof AuthError) return toGraphQLError(error);
    const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
    (options.current?.() ?? logger).error({ err: original }, 'unexpected error');
    if (typeof error === 'object' && error !== null) options.logged?.add(error);
    return new GraphQLError(message, {
      nodes: error instanceof GraphQLError ? error.nodes : undefined,
      path: error instanceof GraphQLError ? error.path : undefined,
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
  };
}

/** The error a scope check raises: UNAUTHENTICATED for anonymous callers, FORBIDDEN otherwise. */
export function scopeError(authenticated: boolean): AuthError {
  return authenticated
    ? new AuthError('FORBIDDEN', 'You are not allowed to do this')
    : unauthenticated('AUTHENTICATION_REQUIRED');
}
