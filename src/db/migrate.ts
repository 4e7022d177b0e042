// Brings a database up to the latest migration of its dialect.
import type { Orm } from './orm.ts';

/** Applies pending migrations; returns the names of those it ran. */
export async function migrate(orm: Orm): Promise<string[]> {
  const done = await orm.migrator.up();
  return done.map((m) => m.name);
}
