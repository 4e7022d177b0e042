// Builds the executable schema from the area files, and prints it (sorted) for schema.graphql.
import { type GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from './builder.ts';
import './session.ts';
import './user.ts';
import './auth.ts';

let schema: GraphQLSchema | undefined;

/** The schema is pure (no state of its own), so it is built once and shared by every app in the process. */
export function buildSchema(): GraphQLSchema {
  schema ??= builder.toSchema({ sortSchema: true });
  return schema;
}

export function printSchemaSdl(): string {
  return `${printSchema(lexicographicSortSchema(buildSchema()))}\n`;
}
