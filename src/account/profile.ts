// updateProfile: the account holder's own editable fields (today the display name).
import { audit } from '../audit/audit.ts';
import { normalizeDisplayName } from '../auth/validate.ts';
import { type Call, callerAccount } from '../call.ts';
import type { UserRow } from '../db/entities.ts';
import { transactional } from '../db/transaction.ts';
import type { AccountDeps } from './deps.ts';

export interface UpdateProfileInput {
  /** Absent: unchanged; null or blank: cleared; otherwise at most 100 code points. */
  readonly displayName?: string | null;
}

/** Validates and applies the changes; a change that changes nothing writes nothing. */
export async function updateProfile(
  deps: Pick<AccountDeps, 'clock'>,
  call: Call,
  input: UpdateProfileInput,
): Promise<UserRow> {
  const { em, meta } = call;
  const user = await callerAccount(call);
  const userId = user.id;
  const displayName = input.displayName === undefined ? undefined : normalizeDisplayName(input.displayName);
  if (displayName === undefined || displayName === (user.displayName ?? null)) return user;
  const now = new Date(deps.clock.now());
  await transactional(em, async (tx) => {
    user.displayName = displayName;
    user.updatedAt = now;
    audit(tx, meta, { type: 'PROFILE_UPDATED', userId, detail: { fields: 'displayName' } }, now);
  });
  return user;
}
