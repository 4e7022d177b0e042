// resetUserMfa (users:write): an admin takes every second factor off an account (TOTP, recovery codes, passkeys)
// for a user who lost them all; every session of the user is revoked (MFA_CHANGED), the admin's own excepted.
import { audit } from '../audit/audit.ts';
import { type Call, callerOf } from '../call.ts';
import { MfaTotp, Passkey, RecoveryCode, type UserRow } from '../db/entities.ts';
import { transactional } from '../db/transaction.ts';
import { AuthError } from '../errors.ts';
import { holdCallerSession } from '../sessions/caller-session.ts';
import type { MfaDeps } from './factors.ts';
import { lockUserForMfaChange } from './user-lock.ts';

/** Removes every factor of `userId`; NOT_FOUND for an unknown user. Returns the user. */
export async function resetUserMfa(
  deps: Pick<MfaDeps, 'clock' | 'sessions'>,
  call: Call,
  userId: string,
): Promise<UserRow> {
  const caller = callerOf(call);
  const now = new Date(deps.clock.now());
  const { user, revocation } = await transactional(call.em, async (tx) => {
    const user = await lockUserForMfaChange(tx, userId);
    if (!user) throw new AuthError('NOT_FOUND', 'No such user');
    await holdCallerSession(tx, caller);
    const removed = {
      totp: await tx.nativeDelete(MfaTotp, { user: userId }),
      recoveryCodes: await tx.nativeDelete(RecoveryCode, { user: userId }),
      passkeys: await tx.nativeDelete(Passkey, { user: userId }),
    };
    audit(tx, call.meta, { type: 'MFA_RESET', userId, detail: { by: caller.sub, ...removed } }, now);
    const revocation = await deps.sessions.revokeIn(tx, {
      userId,
      sessionIds: 'all',
      reason: 'MFA_CHANGED',
      meta: call.meta,
      ...(caller.sub === userId ? { except: caller.sid } : {}),
    });
    return { user, revocation };
  });
  await deps.sessions.published(revocation);
  return user;
}
