// The refresh hot path through MikroORM's Kysely with bound parameters (prepared statements): one read of the
// session with its user, then the rotation and its audit row in one transaction. The rules (what the next
// token is, when it expires) are sessions/rotation.ts's; this file only reads and writes.

import type { Kysely } from 'kysely';
import type { AuditEventRow, SessionRow, UserRow } from './entities.ts';
import type { Em } from './orm.ts';
import { type SlotOf, Statement } from './prepared.ts';
import { INSERT_AUDIT_EVENT } from './session-opening.ts';
import { auditEventColumns, kysely, stampOf, type Tables, toSession, toUser } from './tables.ts';
import { retryTransient } from './transaction.ts';

export interface SessionWithUser {
  readonly session: SessionRow;
  readonly user: UserRow;
}

const FIND_SESSION_WITH_USER = new Statement((db: Kysely<Tables>, slot: SlotOf) =>
  db
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
      's.client_id',
      'u.id as u_id',
      'u.email as u_email',
      'u.password_hash as u_password_hash',
      'u.email_verified as u_email_verified',
      'u.display_name as u_display_name',
      'u.roles as u_roles',
      'u.disabled as u_disabled',
      'u.scopes as u_scopes',
      'u.created_at as u_created_at',
      'u.updated_at as u_updated_at',
    ])
    .where('s.id', '=', slot('sessionId')),
);

/** The session and its user, as plain objects of the entities' shape. */
export async function findSessionWithUser(em: Em, sessionId: string): Promise<SessionWithUser | undefined> {
  const row = (await FIND_SESSION_WITH_USER.execute(kysely(em), { sessionId })).rows[0];
  if (!row) return undefined;
  const user = toUser({
    id: row.u_id,
    email: row.u_email,
    password_hash: row.u_password_hash,
    email_verified: row.u_email_verified,
    display_name: row.u_display_name,
    roles: row.u_roles,
    disabled: row.u_disabled,
    scopes: row.u_scopes,
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
  /**
   * The session's end before this rotation (ms since the epoch; unchanged while generation and hash match), and
   * the clock to compare it with once the UPDATE holds the row: a rotation that waited on the row's lock past
   * that end must not extend the session (a revocation that locked the row meanwhile left it out as expired).
   */
  readonly fromExpiresAt: number;
  readonly now: () => number;
  readonly changes: Pick<
    SessionRow,
    'refreshGeneration' | 'refreshTokenHash' | 'rotatedAt' | 'lastUsedAt' | 'expiresAt' | 'ipAddress' | 'userAgent'
  >;
  /** Written in the same transaction when the rotation applies. */
  readonly audit: Omit<AuditEventRow, 'id'>;
}

// The conditional UPDATE in its four shapes: with or without the request's IP address, and its user agent (each
// kept as it was when the request has none).
const rotateStatement = (withIp: boolean, withUserAgent: boolean) =>
  new Statement((db: Kysely<Tables>, slot: SlotOf) =>
    db
      .updateTable('sessions')
      .set({
        refresh_token_hash: slot('refreshTokenHash'),
        refresh_generation: slot('refreshGeneration'),
        rotated_at: slot('rotatedAt'),
        last_used_at: slot('lastUsedAt'),
        expires_at: slot('expiresAt'),
        ...(withIp ? { ip_address: slot('ipAddress') } : {}),
        ...(withUserAgent ? { user_agent: slot('userAgent') } : {}),
      })
      .where('id', '=', slot('sessionId'))
      .where('refresh_generation', '=', slot('fromGeneration'))
      .where('refresh_token_hash', '=', slot('fromHash'))
      // Not `revoked_at is null`: the optimizer may read that index first and lock it before the row, the
      // opposite order to a revocation (row, then index), which deadlocks on MySQL. revoked_reason is set in
      // the same statement as revoked_at and has no index, so this UPDATE locks the primary key row alone.
      .where('revoked_reason', 'is', null),
  );
const ROTATE = [
  [rotateStatement(false, false), rotateStatement(false, true)],
  [rotateStatement(true, false), rotateStatement(true, true)],
] as const;

/** Thrown inside a rotation's transaction to roll it back when the session has ended meanwhile. */
class SessionEnded extends Error {}

/** What became of a rotation: written, another refresh or a revocation got there first, or the session ended. */
export type RotationOutcome = 'rotated' | 'overtaken' | 'expired';

/**
 * Rotates in one transaction: a conditional UPDATE (the arbiter between concurrent refreshes: exactly one
 * finds the row) and the audit row. 'overtaken' when another refresh got there first (or the session was revoked
 * meanwhile); 'expired', rolled back, when the session's end had passed once the UPDATE held the row. Re-run on
 * transient conflicts.
 */
export async function rotateRefreshToken(em: Em, write: RotationWrite): Promise<RotationOutcome> {
  const stamp = stampOf(em);
  const { changes } = write;
  const rotate = ROTATE[changes.ipAddress == null ? 0 : 1][changes.userAgent == null ? 0 : 1];
  const values = {
    refreshTokenHash: changes.refreshTokenHash,
    refreshGeneration: changes.refreshGeneration,
    rotatedAt: changes.rotatedAt ? stamp(changes.rotatedAt) : null,
    lastUsedAt: stamp(changes.lastUsedAt),
    expiresAt: stamp(changes.expiresAt),
    ipAddress: changes.ipAddress,
    userAgent: changes.userAgent,
    sessionId: write.sessionId,
    fromGeneration: write.fromGeneration,
    fromHash: write.fromHash,
  };
  const audit = auditEventColumns(write.audit, stamp);
  return retryTransient(() =>
    kysely(em)
      .transaction()
      .execute(async (trx) => {
        const result = await rotate.execute(trx, values);
        if (Number(result.numAffectedRows) !== 1) return 'overtaken';
        // Decided under the row's lock, as revocations decide what is active (Sessions.revokeIn): the UPDATE is
        // undone by the rollback the throw brings.
        if (write.now() >= write.fromExpiresAt) throw new SessionEnded();
        await INSERT_AUDIT_EVENT.execute(trx, audit);
        return 'rotated';
      })
      .catch((error: unknown) => {
        if (error instanceof SessionEnded) return 'expired' as const;
        throw error;
      }),
  );
}
