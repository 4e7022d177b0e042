// Limits on the shape of a document, checked before execution: depth, aliases, directives, tokens and cost
// (graphql-armor), introspection (graphql-js's NoSchemaIntrospectionCustomRule) unless enabled, and no
// "Did you mean …?" hints of any kind where introspection is off (they would leak the schema piece by piece).
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { GraphQLError, NoSchemaIntrospectionCustomRule, type ValidationContext } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { GraphQLLimitsConfig } from '../config.ts';

export interface GraphQLLimitsOptions {
  readonly limits: GraphQLLimitsConfig;
  readonly introspection: boolean;
}

// Armor throws from inside the validation rule, which would end validation with a bare error; reported instead,
// the refusal is an ordinary validation error (GRAPHQL_VALIDATION_FAILED, HTTP 400) next to the others.
const report = {
  propagateOnRejection: false,
  onReject: [
    (context: ValidationContext | null, error: GraphQLError) => {
      context?.reportError(new GraphQLError(error.message.replace(/^Syntax Error: /, '')));
    },
  ],
};

export function useGraphQLLimits({ limits, introspection }: GraphQLLimitsOptions): Plugin[] {
  const armor = EnvelopArmorPlugin({
    maxDepth: { n: limits.maxDepth, ...report },
    maxAliases: { n: limits.maxAliases, ...report },
    maxDirectives: { n: limits.maxDirectives, ...report },
    // Counted while parsing, before there is a validation context: a parse error (GRAPHQL_PARSE_FAILED, 400).
    maxTokens: { n: limits.maxTokens },
    costLimit: { maxCost: limits.maxCost, ...report },
    // Off: armor's filter knows only field suggestions; useNoSuggestions below removes every kind.
    blockFieldSuggestion: { enabled: false },
  }) as Plugin;
  const plugins: Plugin[] = [armor];
  if (!introspection) {
    plugins.push(
      {
        onValidate({ addValidationRule }) {
          addValidationRule(NoSchemaIntrospectionCustomRule);
        },
      },
      useNoSuggestions(),
    );
  }
  return plugins;
}

/** graphql-js's hints name what exists: `Did you mean "me"?`, `Did you mean the enum value "ADMIN"?`. */
const SUGGESTION = / ?Did you mean [^?]*\?/g;
const hasSuggestion = (error: Error) => error.message.includes('Did you mean ');

function withoutSuggestion<E extends Error>(error: E): E | GraphQLError {
  if (!(error instanceof GraphQLError)) return error;
  // A variable's coercion error wraps the one that says why (with the hint); the error mask answers with that.
  const inner = error.originalError ? withoutSuggestion(error.originalError) : undefined;
  if (!hasSuggestion(error) && inner === error.originalError) return error;
  return new GraphQLError(error.message.replace(SUGGESTION, '').trim(), {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: inner,
    extensions: error.extensions,
  });
}

const hasAnySuggestion = (error: Error): boolean =>
  hasSuggestion(error) ||
  (error instanceof GraphQLError && !!error.originalError && hasAnySuggestion(error.originalError));

const resultWithoutSuggestions = <T extends { errors?: readonly GraphQLError[] }>(result: T): T | undefined =>
  result.errors?.some(hasAnySuggestion) ? { ...result, errors: result.errors.map(withoutSuggestion) } : undefined;

/**
 * Removes every "Did you mean …?" hint: from validation errors (unknown fields, arguments, types, enum values in
 * literals) and from execution results (enum values in variables), over HTTP, SSE and WebSocket alike.
 */
function useNoSuggestions(): Plugin {
  return {
    onValidate() {
      return ({ result, setResult }) => {
        if (result.some(hasSuggestion)) setResult(result.map(withoutSuggestion));
      };
    },
    onExecute() {
      return {
        onExecuteDone({ result, setResult }) {
          if (!('errors' in result)) return;
          const cleaned = resultWithoutSuggestions(result);
          if (cleaned) setResult(cleaned);
        },
      };
    },
  };
}
