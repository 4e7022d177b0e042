// Limits on the shape of a document, checked before execution: depth, aliases, directives, tokens and cost
// (graphql-armor), introspection (graphql-js's NoSchemaIntrospectionCustomRule) unless enabled, and no
// "Did you mean …?" field suggestions where introspection is off (they would leak the schema piece by piece).
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
    blockFieldSuggestion: { enabled: !introspection },
  }) as Plugin;
  const plugins: Plugin[] = [armor];
  if (!introspection) {
    plugins.push({
      onValidate({ addValidationRule }) {
        addValidationRule(NoSchemaIntrospectionCustomRule);
      },
    });
  }
  return plugins;
}
