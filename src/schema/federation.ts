// User as a Federation 2 entity (@key(fields: "id")): other subgraphs reference users by id, and `_entities`
// resolves them here under the same rule as `user(id)`: the account holder, or scope users:read.
import DataLoader from 'dataloader';
import { User, type UserRow } from '../db/entities.ts';
import { builder } from './builder.ts';
import type { Context } from './context.ts';
import { scopeError } from './errors.ts';
import { UserType } from './user.ts';

// One loader per request context, dropped with it: `_entities` hands us every representation of a request at
// once, and they become a single `IN (…)` query instead of one query per reference.
const loaders = new WeakMap<Context, DataLoader<string, UserRow | null>>();

function usersOf(context: Context): DataLoader<string, UserRow | null> {
  let loader = loaders.get(context);
  if (!loader) {
    loader = new DataLoader(async (ids) => {
      const rows = await context.em.find(User, { id: { $in: [...ids] } });
      const byId = new Map(rows.map((row) => [row.id, row]));
      return ids.map((id) => byId.get(id) ?? null);
    });
    loaders.set(context, loader);
  }
  return loader;
}

builder.asEntity(UserType, {
  key: builder.selection<{ id: string }>('id'),
  // Async, so a refusal fails only its own item of `_entities`, not the whole list.
  resolveReference: async (reference, context) => {
    // A gateway gets nothing the bearer token would not get through `me` or `user(id)`.
    const self = context.auth?.sub === reference.id;
    if (!self && !context.auth?.scopes.has('users:read')) throw scopeError(context.auth !== null);
    return usersOf(context).load(String(reference.id));
  },
});
