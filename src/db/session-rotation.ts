// The refresh hot path through MikroORM's Kysely with bound parameters (prepared statements): one read of the
// session with its user, then the rotation and its audit row in one transaction. Everything else about
// sessions goes through the ORM.
import type { Kysely } from 'kysely';
import type { SessionRow, UserRow } from './entities.ts';
import type { Em } from './orm.ts';
import { retryTransient } from './transaction.ts';
import { toUser, type UserRecord } from './user-reads.ts';

type Stamp = number | string | Date;

interface Tables {
  sessions: {
    id: string;
    user_id: string;
    refresh_token_hash: string;
    refresh_generation: number;
    refresh_tag_key: string;
    rotated_at: Stamp | null;
    created_at: Stamp;
    last_used_at: Stamp;
    expires_at: Stamp;
    max_expires_at: Stamp;
    user_agent: string | null;
    ip_address: string | null;
    revoked_at: Stamp | null;
    revoked_reason: string | null;
  };
  users: UserRecord;
  audit_events: {
    type: string;
    user_id: string | null;
    session_id: string | null;
    ip_address: string | null;
    user_agent: string | null;
    detail: string | null;
    created_at: Stamp;
  };
}

const db = (em: Em) => em.getKysely() as unknown as Kysely<Tables>;
// SQLite keeps datetimes as epoch milliseconds and booleans as 0/1; MySQL drivers give Date and 0/1.
const date = (value: Stamp): Date => new Date(value);
const optionalDate = (value: Stamp | null): Date | null => (value === null ? null : new Date(value));

export interface SessionWithUser {
  readonly session: SessionRow;
  readonly user: UserRow;
}

/** The session and its user, as plain objects of the entities' shape. */
export async function findSessionWithUser(em: Em, sessionId: string): Promise<SessionWithUser | undefined> {
  const row = await db(em)
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
  const session = {
    id: row.id,
    user,
    refreshTokenHash: row.refresh_token_hash,
    refreshGeneration: Number(row.refresh_generation),
    refreshTagKey: row.refresh_tag_key,
    rotatedAt: optionalDate(row.rotated_at),
    createdAt: date(row.created_at),
    lastUsedAt: date(row.last_used_at),
    expiresAt: date(row.expires_at),
    maxExpiresAt: date(row.max_expires_at),
    userAgent: row.user_agent,
    ipAddress: row.ip_address,
    revokedAt: optionalDate(row.revoked_at),
    revokedReason: row.revoked_reason,
  } as unknown as SessionRow;
  return { session, user };
}

export interface Rotation {
  readonly sessionId: string;
  readonly userId: string;
  /** The generation and hash the presented token matched: the update only applies if they are still current. */
  readonly fromGeneration: number;
  readonly fromHash: string;
  readonly toHash: string;
  readonly at: Date;
  readonly expiresAt: Date;
  readonly ipAddress: string | null;
  readonly userAgent: string | null;
}

/**
 * Rotates in one transaction: a conditional UPDATE (the arbiter between concurrent refreshes: exactly one
 * finds the row) and the TOKEN_REFRESHED audit row. Returns false when another refresh got there first.
 */
export async function rotateRefreshToken(em: Em, rotation: Rotation): Promise<boolean> {
  const stamp = (value: Date) => em.getPlatform().processDateProperty(value) as Stamp;
  return retryTransient(() =>
    db(em)
      .transaction()
      .execute(async (trx) => {
        const result = await trx
          .updateTable('sessions')
          .set({
            refresh_token_hash: rotation.toHash,
            refresh_generation: rotation.fromGeneration + 1,
            rotated_at: stamp(rotation.at),
            last_used_at: stamp(rotation.at),
            expires_at: stamp(rotation.expiresAt),
            ...(rotation.ipAddress === null ? {} : { ip_address: rotation.ipAddress }),
            ...(rotation.userAgent === null ? {} : { user_agent: rotation.userAgent }),
          })
          .where('id', '=', rotation.sessionId)
          .where('refresh_generation', '=', rotation.fromGeneration)
          .where('refresh_token_hash', '=', rotation.fromHash)
          // Not `revoked_at is null`: the optimizer may read that index first and lock it before the row, the
          // opposite order to a revocation (row, then index), which deadlocks on MySQL. revoked_reason is set in
          // the same statement as revoked_at and has no index, so this UPDATE locks the primary key row alone.
          .where('revoked_reason', 'is', null)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) return false;
        await trx
          .insertInto('audit_events')
          .values({
            type: 'TOKEN_REFRESHED',
            user_id: rotation.userId,
            session_id: rotation.sessionId,
            ip_address: rotation.ipAddress,
            user_agent: rotation.userAgent,
            detail: null,
            created_at: stamp(rotation.at),
          })
          .execute();
        return true;
      }),
  );
}
