// unlinkOAuthProvider: removes a linked provider account, but never the last way into an account.
import { LockMode } from '@mikro-orm/core';
import { audit } from '../audit/audit.ts';
import { type Call, callerOf } from '../call.ts';
import type { Clock } from '../clock.ts';
import { LinkedAccount, User, type UserRow } from '../db/entities.ts';
import { transactional } from '../db/transaction.ts';
import { AuthError, badInput, unauthenticated } from '../errors.ts';
import { holdCallerSession } from '../sessions/caller-session.ts';

/**
 * Unlinks `provider` from the user. NOT_FOUND when no account of it is linked; BAD_USER_INPUT (field `provider`)
 * when it is the only way left to sign in (no password, no other linked account).
 */
export async function unlinkOAuthProvider(
  deps: { readonly clock: Clock },
  call: Call,
  { provider }: { provider: string },
): Promise<UserRow> {
  const { em, meta } = call;
  const userId = callerOf(call).sub;
  return transactional(em, async (tx) => {
    // The row lock serialises concurrent unlinks of one user on MySQL (so two of them cannot each leave the other's
    // link as "the last one" and remove both); SQLite ignores it and runs one write transaction at a time anyway.
    const user = await tx.findOne(User, { id: userId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!user) throw unauthenticated('SESSION_REVOKED');
    await holdCallerSession(tx, callerOf(call));
    const link = await tx.findOne(LinkedAccount, { user: userId, provider });
    if (!link) throw new AuthError('NOT_FOUND', 'No account of this provider is linked');
    if (user.passwordHash === null && (await tx.count(LinkedAccount, { user: userId })) <= 1) {
      throw badInput(
        'provider',
        'This is the only way to sign in to the account: set a password (through a password reset) or link another provider first',
      );
    }
    tx.remove(link);
    audit(tx, meta, { type: 'OAUTH_UNLINKED', userId, detail: { provider } }, new Date(deps.clock.now()));
    return user;
  });
}
