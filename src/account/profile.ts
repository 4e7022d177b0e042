// updateProfile: the account holder's own editable fields (today the display name).
import { audit } from '../audit/audit.ts';
import { normalizeDisplayName } from '../auth/validate.ts';
import { type Call, callerAccount, callerOf } from '../call.ts';
import { User, type UserRow } from '../db/entities.ts';
import { transactional } from '../db/transaction.ts';
import { lockCallerAccount } from '../mfa/user-lock.ts';
import type { AccountDeps } from './deps.ts';

export interface UpdateProfileInput {
  /** Absent: unchanged; null or blank: cleared; otherwise at most 100 code points. */
  readonly displayName?: string | null;
}

/**
 * Validates and applies the changes; a change that changes nothing writes nothing. UNAUTHENTICATED
 * SESSION_REVOKED when the caller's session was revoked while the request ran: the change lands before the
 * revocation is answered or not at all.
 */
export async function updateProfile(
  deps: Pick<AccountDeps, 'clock'>,
  call: Call,
  input: UpdateProfileInput,
): Promise<UserRow> {
  const caller = callerOf(call);
  const displayName = input.displayName === undefined ? undefined : normalizeDisplayName(input.displayName);
  const current = await callerAccount(call);
  // Nothing to write: no lock taken (a user's sign-ins wait for an exclusive lock on the user row).
  if (displayName === undefined || displayName === (current.displayName ?? null)) return current;
  return transactional(call.em, async (tx) => {
    // Compared with and written from the row as it is under the lock, not a copy read before it.
    const user = await lockCallerAccount(tx, caller);
    if (displayName === (user.displayName ?? null)) return user;
    const now = new Date(deps.clock.now());
    // A native UPDATE by id: the locked row is not managed (and cached copies of the user are dropped).
    await tx.nativeUpdate(User, { id: user.id }, { displayName, updatedAt: now });
    audit(tx, call.meta, { type: 'PROFILE_UPDATED', userId: user.id, detail: { fields: 'displayName' } }, now);
    return { ...user, displayName, updatedAt: now } as UserRow;
  });
}
