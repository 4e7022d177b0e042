// Builds the executable schema (a Federation 2 subgraph) from the area files, and prints it (sorted) for
// schema.graphql; the federation SDL with @link and @key is what `_service { sdl }` answers.
import { type GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from './builder.ts';
import './session.ts';
import './user.ts';
import './auth.ts';
import './account.ts';
import './subscription.ts';
import './admin.ts';
import './audit.ts';
import './oauth.ts';
import './federation.ts';

/** The Federation version our subgraph SDL links to. */
export const FEDERATION_LINK = 'https://specs.apollo.dev/federation/v2.6';

let schema: GraphQLSchema | undefined;

/** The schema is pure (no state of its own), so it is built once and shared by every app in the process. */
export function buildSchema(): GraphQLSchema {
  schema ??= builder.toSubGraphSchema({ linkUrl: FEDERATION_LINK, federationDirectives: ['@key'], sortSchema: true });
  return schema;
}

/** The schema as clients see it (with `_entities` and `_service`): schema.graphql. */
export function printSchemaSdl(): string {
  return `${printSchema(lexicographicSortSchema(buildSchema()))}\n`;
}
