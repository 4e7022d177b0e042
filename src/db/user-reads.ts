// Reads of users on hot paths (`me`, federation entities) through MikroORM's Kysely with bound parameters:
// a prepared statement instead of the ORM's query pipeline. Rows come back as plain objects of the
// entity's shape (not managed by an EntityManager); write through the ORM as usual.
import type { Kysely } from 'kysely';
import type { UserRow } from './entities.ts';
import type { Em } from './orm.ts';
import { type SlotOf, Statement } from './prepared.ts';
import { kysely, type Tables, toUser } from './tables.ts';

// One user by id, the common case (`me`): compiled once per dialect.
const FIND_USER = new Statement((db: Kysely<Tables>, slot: SlotOf) =>
  db.selectFrom('users').selectAll().where('id', '=', slot('id')),
);

const FIND_USER_BY_EMAIL = new Statement((db: Kysely<Tables>, slot: SlotOf) =>
  db.selectFrom('users').selectAll().where('email', '=', slot('email')),
);

/** The user whose (normalized) email is `email`, read on `em` (its transaction, if it is in one). */
export async function findUserByEmail(em: Em, email: string): Promise<UserRow | undefined> {
  const row = (await FIND_USER_BY_EMAIL.execute(kysely(em), { email })).rows[0];
  return row && toUser(row);
}

/** The users of `ids` that exist (any order), read on `em` (its transaction, if it is in one). */
export async function findUsersByIds(em: Em, ids: readonly string[]): Promise<UserRow[]> {
  const db = kysely(em);
  const rows =
    ids.length === 1
      ? (await FIND_USER.execute(db, { id: ids[0] })).rows
      : await db
          .selectFrom('users')
          .selectAll()
          .where('id', 'in', [...ids])
          .execute();
  return rows.map(toUser);
}
