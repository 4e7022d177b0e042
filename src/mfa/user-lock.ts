// The one lock rule of second-factor changes: every transaction that changes a user's factors (TOTP, recovery
// codes, passkeys, an admin's reset) takes the user's row exclusively before anything else, then the session
// that asks for the change, which must still be active. The account holder's other changes of their own account
// (a profile edit) take the same two locks in the same order, through lockCallerAccount.
import { LockMode } from '@mikro-orm/core';
import { User, type UserRow } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { unauthenticated } from '../errors.ts';
import { holdCallerSession } from '../sessions/caller-session.ts';
import type { AccessClaims } from '../tokens/claims.ts';

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

/**
 * The caller's own user row, locked on `tx` as lockUserForMfaChange locks it (not managed: write it with a native
 * update by id), with the caller's session held after it: UNAUTHENTICATED SESSION_REVOKED when that session was
 * revoked while the request ran, or the account is gone. For a change of the account holder's own that is not a
 * second factor (the profile), so that it too lands before a revocation's answer or not at all.
 */
export async function lockCallerAccount(tx: Em, caller: Pick<AccessClaims, 'sub' | 'sid'>): Promise<UserRow> {
  const user = await lockUserForMfaChange(tx, caller.sub, caller.sid);
  if (!user) throw unauthenticated('SESSION_REVOKED');
  return user;
}
