// Builds the executable schema (a Federation 2 subgraph) from the area files, and prints it (sorted) for
// schema.graphql; the federation SDL with @link and @key is what `_service { sdl }` answers.
import { type GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from './builder.ts';
import type { Context } from './context.ts';
import { scopeError } from './errors.ts';
import './session.ts';
import './user.ts';
import './auth.ts';
import './account.ts';
import './subscription.ts';
import './revocations.ts';
import './admin.ts';
import './clients.ts';
import './audit.ts';
import './oauth.ts';
import './mfa.ts';
import './passkeys.ts';
import './federation.ts';

/** The Federation version our subgraph SDL links to. */
export const FEDERATION_LINK = 'https://specs.apollo.dev/federation/v2.6';

let schema: GraphQLSchema | undefined;

/** The schema is pure (no state of its own), so it is built once and shared by every app in the process. */
export function buildSchema(): GraphQLSchema {
  schema ??= guardServiceSdl(
    builder.toSubGraphSchema({ linkUrl: FEDERATION_LINK, federationDirectives: ['@key'], sortSchema: true }),
  );
  return schema;
}

/** Scopes that may read the subgraph SDL when FEDERATION_SDL=scoped: a gateway's or a service's token. */
const SDL_SCOPES = ['users:read', 'sessions:feed'];

/**
 * `_service` comes from the federation plugin, not from a field of ours, so its scope check is added here:
 * with FEDERATION_SDL=scoped (production's default) only a token with an SDL scope reads the schema, which
 * introspection would otherwise be the only (and disabled) way to get.
 */
function guardServiceSdl(built: GraphQLSchema): GraphQLSchema {
  const field = built.getQueryType()?.getFields()._service;
  if (!field) throw new Error('the subgraph schema has no _service field');
  const resolve = field.resolve ?? ((root: Record<string, unknown>) => root?._service);
  field.resolve = (root, args, context: Context, info) => {
    if (context.services.federationSdl === 'scoped') {
      const scopes = context.auth?.scopes as ReadonlySet<string> | undefined;
      if (!SDL_SCOPES.some((scope) => scopes?.has(scope))) throw scopeError(context.auth !== null);
    }
    return resolve(root, args, context, info);
  };
  return built;
}

/** The schema as clients see it (with `_entities` and `_service`): schema.graphql. */
export function printSchemaSdl(): string {
  return `${printSchema(lexicographicSortSchema(buildSchema()))}\n`;
}
