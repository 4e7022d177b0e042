// Opening a session through MikroORM's Kysely with bound parameters (prepared statements), on the caller's
// transaction: the locking reads of the user and client rows, and the session's INSERT. Every sign-in (password,
// passkey, OAuth, the MFA step, registration) comes through here; the rules (who may sign in, what the first token
// is) are sessions/sessions.ts's, this file only reads and writes.

import { type Expression, type Kysely, SqliteAdapter, sql } from 'kysely';
import type { AuditEventRow, SessionRow } from './entities.ts';
import type { Em } from './orm.ts';
import { type SlotOf, Statement } from './prepared.ts';
import { AUDIT_EVENTS_COLUMNS, auditEventColumns, kysely, stampOf, type Tables } from './tables.ts';

// SQLite has no row locks (a write transaction holds the database); MySQL/MariaDB read under a shared lock, in the
// words both understand (MariaDB has no FOR SHARE).
const shared = <Q extends { modifyEnd(modifier: Expression<unknown>): Q }>(db: Kysely<Tables>, query: Q): Q =>
  db.getExecutor().adapter instanceof SqliteAdapter ? query : query.modifyEnd(sql.raw('lock in share mode'));

const LOCK_USER = new Statement((db: Kysely<Tables>, slot: SlotOf) =>
  shared(
    db,
    db.selectFrom('users').select(['disabled', 'roles', 'scopes', 'password_hash']).where('id', '=', slot('id')),
  ),
);

const LOCK_CLIENT = new Statement((db: Kysely<Tables>, slot: SlotOf) =>
  shared(db, db.selectFrom('clients').select(['disabled']).where('id', '=', slot('id'))),
);

const INSERT_SESSION = new Statement((db: Kysely<Tables>, slot: SlotOf) =>
  db.insertInto('sessions').values({
    id: slot('id'),
    user_id: slot('userId'),
    refresh_token_hash: slot('refreshTokenHash'),
    refresh_generation: slot('refreshGeneration'),
    refresh_tag_key: slot('refreshTagKey'),
    rotated_at: null,
    created_at: slot('createdAt'),
    last_used_at: slot('lastUsedAt'),
    expires_at: slot('expiresAt'),
    max_expires_at: slot('maxExpiresAt'),
    user_agent: slot('userAgent'),
    ip_address: slot('ipAddress'),
    revoked_at: null,
    revoked_reason: null,
    cookie_bound: slot('cookieBound'),
    client_id: slot('clientId'),
  }),
);

/** An audit row, every column bound (`id` is generated): the sign-in's and the refresh's. */
export const INSERT_AUDIT_EVENT = new Statement((db: Kysely<Tables>, slot: SlotOf) =>
  db
    .insertInto('audit_events')
    .values(Object.fromEntries(Object.keys(AUDIT_EVENTS_COLUMNS).map((column) => [column, slot(column)])) as never),
);

/**
 * Runs `statement` on `em`'s transaction, with the driver's errors converted as the ORM converts its own (a
 * ForeignKeyConstraintViolationException for a user deleted meanwhile, a DeadlockException...), so that callers
 * handle these statements' failures as they handle a flush's.
 */
async function run<R>(em: Em, statement: Statement<Tables, R>, values: Readonly<Record<string, unknown>>) {
  try {
    return await statement.execute(kysely(em), values);
  } catch (error) {
    throw em.getDriver().convertException(error as Error);
  }
}

/** What the sign-in lock reads of the user: undefined when the row is gone. */
export interface LockedUser {
  readonly disabled: boolean;
  readonly roles: string;
  readonly scopes: string;
  readonly passwordHash: string | null;
}

/**
 * Reads the user's row under a shared lock (MySQL/MariaDB; SQLite's write transaction holds the whole database),
 * on `em`'s transaction: what disabling, role and scope changes take exclusively before revoking sessions.
 */
export async function lockUserForSignIn(em: Em, userId: string): Promise<LockedUser | undefined> {
  const row = (await run(em, LOCK_USER, { id: userId })).rows[0];
  return (
    row && { disabled: Boolean(row.disabled), roles: row.roles, scopes: row.scopes, passwordHash: row.password_hash }
  );
}

/** The client's `disabled` under a shared lock, on `em`'s transaction; undefined when there is no such client. */
export async function lockClientForSignIn(em: Em, clientId: string): Promise<{ disabled: boolean } | undefined> {
  const row = (await run(em, LOCK_CLIENT, { id: clientId })).rows[0];
  return row && { disabled: Boolean(row.disabled) };
}

/** INSERTs the session row now, on `em`'s transaction (its user row must be written already). */
export async function insertSession(em: Em, row: SessionRow): Promise<void> {
  const stamp = stampOf(em);
  await run(em, INSERT_SESSION, {
    id: row.id,
    userId: row.user.id,
    refreshTokenHash: row.refreshTokenHash,
    refreshGeneration: row.refreshGeneration,
    refreshTagKey: row.refreshTagKey,
    createdAt: stamp(row.createdAt),
    lastUsedAt: stamp(row.lastUsedAt),
    expiresAt: stamp(row.expiresAt),
    maxExpiresAt: stamp(row.maxExpiresAt),
    userAgent: row.userAgent ?? null,
    ipAddress: row.ipAddress ?? null,
    cookieBound: row.cookieBound ? 1 : 0,
    clientId: row.clientId,
  });
}

/** INSERTs an audit row now, on `em`'s transaction. */
export async function insertAuditEvent(em: Em, event: Omit<AuditEventRow, 'id'>): Promise<void> {
  await run(em, INSERT_AUDIT_EVENT, auditEventColumns(event, stampOf(em)) as never);
}
