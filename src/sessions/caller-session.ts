// A change asked for by a signed-in user lands only while the session that asks is still active. The access token
// was checked when the request came in, but a revocation (a password change, revokeSession from another device, an
// admin's) may commit while the request runs; once that revocation has been answered, the session must change
// nothing more (a stolen session, thrown out by its owner, must not leave a passkey, an authenticator, a role or a
// client secret of its own behind).
import { LockMode } from '@mikro-orm/core';
import { Session } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { unauthenticated } from '../errors.ts';
import type { AccessClaims } from '../tokens/claims.ts';

/**
 * Reads the caller's session under a shared lock (LOCK IN SHARE MODE on MySQL/MariaDB; SQLite's write transaction
 * holds the database) inside `tx`, the transaction of the change: UNAUTHENTICATED SESSION_REVOKED when it is no
 * longer active. A revocation committed first is seen; one still running waits for this transaction, so the change
 * lands before the revocation, as if the request had been quicker. Take it after the rows the change locks first
 * (a user row, a client row) and before the sessions a revocation in the same transaction locks. Does nothing for a
 * call without a user session (a service token, the admin CLI).
 */
export async function holdCallerSession(
  tx: Em,
  caller: Pick<AccessClaims, 'sub' | 'sid'> | null | undefined,
): Promise<void> {
  if (!caller) return;
  const [session] = await tx.find(
    Session,
    { id: caller.sid, user: caller.sub, revokedReason: null },
    { fields: ['id'], lockMode: LockMode.PESSIMISTIC_READ, disableIdentityMap: true },
  );
  if (!session) throw unauthenticated('SESSION_REVOKED');
}
