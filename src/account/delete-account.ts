// deleteAccount: removes the user, their sessions and linked accounts in one transaction, ends their sessions
// everywhere, and leaves only an anonymised audit trail behind.
import { LockMode } from '@mikro-orm/core';
import { audit, type RequestMeta } from '../audit/audit.ts';
import { auditLockouts, couldBeStored } from '../auth/login.ts';
import { type Call, callerAccount } from '../call.ts';
import { AuditEvent, LinkedAccount, Session, User } from '../db/entities.ts';
import { transactional } from '../db/transaction.ts';
import { AuthError, badInput } from '../errors.ts';
import { withAttempt } from '../limits/attempts.ts';
import { holdCallerSession } from '../sessions/caller-session.ts';
import type { AccountDeps } from './deps.ts';

const NO_ONE: RequestMeta = { ipAddress: null, userAgent: null };

/**
 * Deletes the caller's account. An account with a password must confirm it (BAD_USER_INPUT when missing,
 * INVALID_CREDENTIALS when wrong, RATE_LIMITED while the account's sign-in is locked). Sessions are revoked
 * (ACCOUNT_DELETED) and deleted with the user; the user's audit rows lose their user id, IP address and user
 * agent; one ACCOUNT_DELETED row without personal data is added. After commit the revocation is published and
 * the user's pending codes are dropped.
 */
export async function deleteAccount(
  deps: Pick<AccountDeps, 'clock' | 'hasher' | 'sessions' | 'codes' | 'limits'>,
  call: Call,
  { password }: { password?: string | null },
): Promise<true> {
  const { em, meta } = call;
  const user = await callerAccount(call);
  const userId = user.id;
  if (user.passwordHash) {
    if (!password) throw badInput('password', 'Enter your password to delete the account');
    // A wrong password here is a failed sign-in of the account (a stolen access token must not make this an
    // unthrottled password oracle): reserved before the comparison, refused while the account is locked.
    const hash = user.passwordHash;
    const verdict = await withAttempt(deps.limits.login.reserve(user.email, meta.ipAddress), (attempt) =>
      attempt.compare(async () => couldBeStored(password) && (await deps.hasher.verify(password, hash))),
    );
    if (!verdict.matched) {
      const at = new Date(deps.clock.now());
      audit(em, meta, { type: 'ACCOUNT_DELETION_FAILED', userId, detail: { reason: 'WRONG_PASSWORD' } }, at);
      auditLockouts(em, meta, verdict.failure, userId, at);
      await em.flush();
      throw new AuthError('INVALID_CREDENTIALS', 'The password is incorrect', { field: 'password' });
    }
  }
  const revocation = await transactional(em, async (tx) => {
    // Lock the account first (MySQL): a sign-in racing the deletion waits, then fails on the foreign key,
    // instead of slipping a session in that the revocation below would not know about.
    await tx.findOne(User, { id: userId }, { lockMode: LockMode.PESSIMISTIC_WRITE, disableIdentityMap: true });
    await holdCallerSession(tx, call.caller);
    const revoked = await deps.sessions.revokeIn(tx, { userId, sessionIds: 'all', reason: 'ACCOUNT_DELETED', meta });
    // The revocations' audit rows must be written before the trail is anonymised below.
    await tx.flush();
    await tx.nativeUpdate(AuditEvent, { userId }, { userId: null, ipAddress: null, userAgent: null });
    audit(
      tx,
      NO_ONE,
      { type: 'ACCOUNT_DELETED', detail: { sessionsRevoked: revoked.sessionIds.length } },
      new Date(revoked.revokedAt),
    );
    // Sessions and linked accounts also go by ON DELETE CASCADE; deleting them by name keeps this independent
    // of the dialect's foreign-key settings.
    await tx.nativeDelete(Session, { user: userId });
    await tx.nativeDelete(LinkedAccount, { user: userId });
    await tx.nativeDelete(User, { id: userId });
    return revoked;
  });
  em.clear();
  await deps.sessions.published(revocation);
  await deps.codes.discardAll(userId);
  return true;
}
