// A change asked for by a signed-in user lands only while the session that asks is still active. The access token
// was checked when the request came in, but a revocation (a password change, revokeSession from another device, an
// admin's) may commit while the request runs; once that revocation has been answered, the session must change
// nothing more (a stolen session, thrown out by its owner, must not leave a passkey, an authenticator, a role or a
// client secret of its own behind, nor sign its owner out). Changes hold the caller's session with holdCallerSession;
// a revocation of the caller's own sessions (revokeSession, revokeOtherSessions) names it as the order's `askedBy`
// instead, so that Sessions.revokeIn locks it in the one statement that locks the rows it revokes.
import { LockMode } from '@mikro-orm/core';
import { Session } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { unauthenticated } from '../errors.ts';
import type { AccessClaims } from '../tokens/claims.ts';

/**
 * Locks the caller's session row (FOR UPDATE on MySQL/MariaDB) inside `tx`, the transaction of the change:
 * UNAUTHENTICATED SESSION_REVOKED when it is no longer active. A revocation committed first is seen; one still
 * running waits for this transaction, so the change lands before the revocation, as if the request had been
 * quicker. Exclusive rather than shared: many changes then revoke the user's other sessions in the same
 * transaction (Sessions.revokeIn locks this row too), and a shared lock upgraded while a revocation or refresh
 * waits for the row would deadlock. Take it after the rows the change locks first (a user row, a client row) and
 * before the sessions a revocation in the same transaction locks (another user's, for an admin). Such a transaction
 * and a revocation that locks its caller's session with the others in one statement (`askedBy`) can still wait for
 * each other, one holding the caller's row and the other a row before it in index order: InnoDB rolls one back
 * and `transactional` runs it again. On SQLite the one connection's transaction mutex orders it (a revocation
 * from another process makes this transaction's first write fail and be retried). Does nothing for a call without
 * a user session (the admin CLI).
 */
export async function holdCallerSession(
  tx: Em,
  caller: Pick<AccessClaims, 'sub' | 'sid'> | null | undefined,
): Promise<void> {
  if (!caller) return;
  const [session] = await tx.find(
    Session,
    { id: caller.sid, user: caller.sub, revokedReason: null },
    { fields: ['id'], lockMode: LockMode.PESSIMISTIC_WRITE, disableIdentityMap: true },
  );
  if (!session) throw unauthenticated('SESSION_REVOKED');
}
