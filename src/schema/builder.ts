// The single Pothos builder: context type, auth scopes from the token's claims, scalars.
import SchemaBuilder from '@pothos/core';
import DirectivePlugin from '@pothos/plugin-directives';
import FederationPlugin from '@pothos/plugin-federation';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { GraphQLError, Kind, valueFromASTUntyped } from 'graphql';
import type { Scope } from '../tokens/scopes.ts';
import type { Context } from './context.ts';
import { scopeError } from './errors.ts';

export const builder = new SchemaBuilder<{
  Context: Context;
  AuthScopes: { authenticated: boolean; scope: Scope };
  Scalars: { DateTime: { Input: Date; Output: Date }; JSON: { Input: unknown; Output: unknown } };
  DefaultInputFieldRequiredness: true;
  DefaultFieldNullability: false;
}>({
  defaultFieldNullability: false,
  // Federation comes after scope-auth, which wraps resolvers; directives carry @key into the subgraph SDL.
  plugins: [ScopeAuthPlugin, DirectivePlugin, FederationPlugin],
  defaultInputFieldRequiredness: true,
  scopeAuth: {
    // Checked when a subscription starts, not only as each event resolves: a caller without the scope never holds
    // a subscription (nor learns of events by their timing).
    authorizeOnSubscribe: true,
    authScopes: (context) => ({
      authenticated: context.auth !== null,
      scope: (scope) => (context.auth ?? context.service)?.scopes.has(scope) ?? false,
    }),
    unauthorizedError: (_parent, context) => scopeError(context.auth !== null || context.service !== null),
  },
});

builder.scalarType('DateTime', {
  description: 'An instant in time, as an ISO 8601 string in UTC.',
  serialize: (value) => value.toISOString(),
  parseValue: (value) => {
    const date = typeof value === 'string' ? new Date(value) : undefined;
    if (!date || Number.isNaN(date.getTime())) throw new GraphQLError('DateTime must be an ISO 8601 string');
    return date;
  },
  parseLiteral: (ast) => {
    const date = ast.kind === Kind.STRING ? new Date(ast.value) : undefined;
    if (!date || Number.isNaN(date.getTime())) throw new GraphQLError('DateTime must be an ISO 8601 string');
    return date;
  },
});

builder.scalarType('JSON', {
  description: 'Any JSON value.',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (ast, variables) => valueFromASTUntyped(ast, variables),
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
