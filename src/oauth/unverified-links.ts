// The rule that stops a pre-account takeover: when someone proves an account's email (password reset, verification
// code), every provider account linked while that email was still unproven is unlinked, with an audit row each.
import { LockMode } from '@mikro-orm/core';
import { audit, type RequestMeta } from '../audit/audit.ts';
import { LinkedAccount, User } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';

/**
 * Call first thing inside the transaction that marks `userId`'s email verified, before it changes the user.
 * Returns the providers it unlinked (none when the email was already verified).
 *
 * Whoever linked a provider to an account with an unproven email may not be the email's owner (they registered
 * with someone else's address and linked their own GitHub), so the owner proving the email must not inherit that
 * way in. emailVerified only ever goes from false to true and an account's email never changes, so while it is
 * false every link on the account was made while it was unproven, and once it is true every such link was removed
 * by the transaction that set it. The user row's write lock, which the link and sign-in transactions take too,
 * keeps a link committed concurrently from slipping past that transaction.
 */
export async function removeUnverifiedLinks(tx: Em, userId: string, meta: RequestMeta, at: Date): Promise<string[]> {
  // A fresh, locked read: the caller's copy of the user may predate a concurrent verification.
  const [user] = await tx.find(
    User,
    { id: userId },
    { fields: ['id', 'emailVerified'], lockMode: LockMode.PESSIMISTIC_WRITE, disableIdentityMap: true },
  );
  if (!user || user.emailVerified) return [];
  const links = await tx.find(
    LinkedAccount,
    { user: userId },
    { fields: ['id', 'provider'], disableIdentityMap: true, orderBy: { provider: 'asc' } },
  );
  if (links.length === 0) return [];
  await tx.nativeDelete(LinkedAccount, { id: { $in: links.map((link) => link.id) } });
  for (const { provider } of links) {
    audit(tx, meta, { type: 'OAUTH_UNLINKED', userId, detail: { provider, reason: 'EMAIL_PROVEN' } }, at);
  }
  return links.map((link) => link.provider);
}
