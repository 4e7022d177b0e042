// Reads of users on hot paths (`me`, federation entities) through MikroORM's Kysely with bound parameters:
// a prepared statement instead of the ORM's query pipeline. Rows come back as plain objects of the
// entity's shape (not managed by an EntityManager); write through the ORM as usual.
import type { Kysely } from 'kysely';
import type { UserRow } from './entities.ts';
import type { Em } from './orm.ts';

/** A users row as the drivers return it. */
export interface UserRecord {
  id: string;
  email: string;
  password_hash: string | null;
  email_verified: number | boolean;
  display_name: string | null;
  roles: string;
  created_at: number | string | Date;
  updated_at: number | string | Date;
}

// SQLite keeps datetimes as epoch milliseconds and booleans as 0/1; MySQL drivers return Date and 0/1.
export const toUser = (r: UserRecord): UserRow =>
  ({
    id: r.id,
    email: r.email,
    passwordHash: r.password_hash,
    emailVerified: Boolean(r.email_verified),
    displayName: r.display_name,
    roles: r.roles,
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
  }) as UserRow;

export async function findUsersByIds(em: Em, ids: readonly string[]): Promise<UserRow[]> {
  const db = em.getKysely() as unknown as Kysely<{ users: UserRecord }>;
  const rows = await db
    .selectFrom('users')
    .selectAll()
    .where('id', 'in', [...ids])
    .execute();
  return rows.map(toUser);
}
