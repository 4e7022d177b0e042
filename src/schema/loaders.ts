// Per-request batching of user reads: every lookup of one request becomes one query (or none, from the user cache).
import DataLoader from 'dataloader';
import type { UserRow } from '../db/entities.ts';
import type { Context } from './context.ts';

// One loader per request context, dropped with it (a WeakMap, so the context type stays free of it).
const loaders = new WeakMap<Context, DataLoader<string, UserRow | null>>();

export function usersOf(context: Context): DataLoader<string, UserRow | null> {
  let loader = loaders.get(context);
  if (!loader) {
    loader = new DataLoader(async (ids) => {
      const rows = await context.services.users.findByIds(ids);
      const byId = new Map(rows.map((row) => [row.id, row]));
      return ids.map((id) => byId.get(id) ?? null);
    });
    loaders.set(context, loader);
  }
  return loader;
}
