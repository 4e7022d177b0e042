// Reads of users on hot paths (`me`, federation entities) through MikroORM's Kysely with bound parameters:
// a prepared statement instead of the ORM's query pipeline. Rows come back as plain objects of the
// entity's shape (not managed by an EntityManager); write through the ORM as usual.
import type { UserRow } from './entities.ts';
import type { Em } from './orm.ts';
import { kysely, toUser } from './tables.ts';

export async function findUsersByIds(em: Em, ids: readonly string[]): Promise<UserRow[]> {
  const rows = await kysely(em)
    .selectFrom('users')
    .selectAll()
    .where('id', 'in', [...ids])
    .execute();
  return rows.map(toUser);
}
