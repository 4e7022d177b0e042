// The refresh hot path through MikroORM's Kysely with bound parameters (prepared statements): one read of the
// session with its user, then the rotation and its audit row in one transaction. The rules (what the next
// token is, when it expires) are sessions/rotation.ts's; this file only reads and writes.
import type { AuditEventRow, SessionRow, UserRow } from './entities.ts';
import type { Em } from './orm.ts';
import { auditEventColumns, kysely, type Stamp, toSession, toUser } from './tables.ts';
import { retryTransient } from './transaction.ts';

export interface SessionWithUser {
  readonly session: SessionRow;
  readonly user: UserRow;
}

/** The session and its user, as plain objects of the entities' shape. */
export async function findSessionWithUser(em: Em, sessionId: string): Promise<SessionWithUser | undefined> {
  const row = await kysely(em)
    .selectFrom('sessions as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .select([
      's.id',
      's.refresh_token_hash',
      's.refresh_generation',
      's.refresh_tag_key',
      's.rotated_at',
      's.created_at',
      's.last_used_at',
      's.expires_at',
      's.max_expires_at',
      's.user_agent',
      's.ip_address',
      's.revoked_at',
      's.revoked_reason',
      's.cookie_bound',
      'u.id as u_id',
      'u.email as u_email',
      'u.password_hash as u_password_hash',
      'u.email_verified as u_email_verified',
      'u.display_name as u_display_name',
      'u.roles as u_roles',
      'u.created_at as u_created_at',
      'u.updated_at as u_updated_at',
    ])
    .where('s.id', '=', sessionId)
    .executeTakeFirst();
  if (!row) return undefined;
  const user = toUser({
    id: row.u_id,
    email: row.u_email,
    password_hash: row.u_password_hash,
    email_verified: row.u_email_verified,
    display_name: row.u_display_name,
    roles: row.u_roles,
    created_at: row.u_created_at,
    updated_at: row.u_updated_at,
  });
  return { session: toSession(row, user), user };
}

/** A rotation to write: the columns it changes, applied only if the token it spends is still the current one. */
export interface RotationWrite {
  readonly sessionId: string;
  /** The generation and hash the presented token matched. */
  readonly fromGeneration: number;
  readonly fromHash: string;
  readonly changes: Pick<
    SessionRow,
    'refreshGeneration' | 'refreshTokenHash' | 'rotatedAt' | 'lastUsedAt' | 'expiresAt' | 'ipAddress' | 'userAgent'
  >;
  /** Written in the same transaction when the rotation applies. */
  readonly audit: Omit<AuditEventRow, 'id'>;
}

/**
 * Rotates in one transaction: a conditional UPDATE (the arbiter between concurrent refreshes: exactly one
 * finds the row) and the audit row. Returns false when another refresh got there first (or the session was
 * revoked meanwhile). Re-run on transient conflicts.
 */
export async function rotateRefreshToken(em: Em, write: RotationWrite): Promise<boolean> {
  const stamp = (value: Date) => em.getPlatform().processDateProperty(value) as Stamp;
  const { changes } = write;
  return retryTransient(() =>
    kysely(em)
      .transaction()
      .execute(async (trx) => {
        const result = await trx
          .updateTable('sessions')
          .set({
            refresh_token_hash: changes.refreshTokenHash,
            refresh_generation: changes.refreshGeneration,
            rotated_at: changes.rotatedAt ? stamp(changes.rotatedAt) : null,
            last_used_at: stamp(changes.lastUsedAt),
            expires_at: stamp(changes.expiresAt),
            ...(changes.ipAddress == null ? {} : { ip_address: changes.ipAddress }),
            ...(changes.userAgent == null ? {} : { user_agent: changes.userAgent }),
          })
          .where('id', '=', write.sessionId)
          .where('refresh_generation', '=', write.fromGeneration)
          .where('refresh_token_hash', '=', write.fromHash)
          // Not `revoked_at is null`: the optimizer may read that index first and lock it before the row, the
          // opposite order to a revocation (row, then index), which deadlocks on MySQL. revoked_reason is set in
          // the same statement as revoked_at and has no index, so this UPDATE locks the primary key row alone.
          .where('revoked_reason', 'is', null)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) return false;
        await trx.insertInto('audit_events').values(auditEventColumns(write.audit, stamp)).execute();
        return true;
      }),
  );
}
