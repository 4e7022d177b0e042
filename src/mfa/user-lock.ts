// The one lock rule of second-factor changes: every transaction that changes a user's factors (TOTP, recovery
// codes, passkeys, an admin's reset) takes the user's row exclusively before anything else, then the session
// that asks for the change, which must still be active.
import { LockMode } from '@mikro-orm/core';
import { User, type UserRow } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { holdCallerSession } from '../sessions/caller-session.ts';

/**
 * Locks `userId`'s row (FOR UPDATE on MySQL/MariaDB; SQLite's write transaction holds the database) on `tx` and
 * returns it, undefined when there is no such user. With `callerSessionId` (the user's own change), then holds that
 * session (holdCallerSession): UNAUTHENTICATED SESSION_REVOKED when it was revoked while the request ran. Taken first, so that MFA changes of one user run one at a
 * time and a sign-in (which reads the row under a shared lock before writing its session, src/db/session-opening.ts)
 * either commits before the change (whose revocation then finds its session) or reads after it (and sees the
 * factor gone). Lock order: user row, then factor rows, then the user's sessions (Sessions.revokeIn), as sign-in's
 * user row, client row, session INSERT: no cycle between the two.
 */
export async function lockUserForMfaChange(
  tx: Em,
  userId: string,
  callerSessionId?: string,
): Promise<UserRow | undefined> {
  const [user] = await tx.find(
    User,
    { id: userId },
    { lockMode: LockMode.PESSIMISTIC_WRITE, disableIdentityMap: true },
  );
  if (callerSessionId !== undefined) await holdCallerSession(tx, { sub: userId, sid: callerSessionId });
  return user;
}
