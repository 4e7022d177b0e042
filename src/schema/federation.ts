// User as a Federation 2 entity (@key(fields: "id")): other subgraphs reference users by id, and `_entities`
// resolves them here under the same rule as `user(id)`: the account holder, or scope users:read. The
// representations of one request are loaded with a single query (see loaders.ts).
import { builder } from './builder.ts';
import { scopeError } from './errors.ts';
import { usersOf } from './loaders.ts';
import { UserType } from './user.ts';

builder.asEntity(UserType, {
  key: builder.selection<{ id: string }>('id'),
  // Async, so a refusal fails only its own item of `_entities`, not the whole list.
  resolveReference: async (reference, context) => {
    // A gateway gets nothing the bearer token would not get through `me` or `user(id)`.
    // The caller's scopes are a user's or, as for `user(id)`, a service token's (client credentials, users:read).
    const caller = context.auth ?? context.service;
    const self = context.auth?.sub === reference.id;
    if (!self && !caller?.scopes.has('users:read')) throw scopeError(caller !== null);
    return usersOf(context).load(String(reference.id));
  },
});
