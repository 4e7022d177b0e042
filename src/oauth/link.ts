// linkOAuthProvider: connects a provider account to the signed-in user who started the attempt.
import { randomUUID } from 'node:crypto';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { audit, type RequestMeta } from '../audit/audit.ts';
import { LinkedAccount, User, type UserRow } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { badInput, unauthenticated } from '../errors.ts';
import { accountInUse, auditFailure, type CallbackDeps, type OAuthCodeInput, redeemCallback } from './callback.ts';
import type { ProviderClient } from './provider-client.ts';

const alreadyLinked = (client: ProviderClient) =>
  badInput('provider', `Another ${client.name} account is linked to this account; unlink it first`);

/** Links the provider account to `userId`. OAUTH_ACCOUNT_IN_USE when it is linked to someone else. */
export async function linkOAuthProvider(
  deps: CallbackDeps,
  em: Em,
  userId: string,
  input: OAuthCodeInput,
  meta: RequestMeta,
): Promise<UserRow> {
  const { client, profile } = await redeemCallback(deps, em, meta, input, userId);
  const user = await em.findOne(User, { id: userId });
  if (!user) throw unauthenticated('The account no longer exists', 'ACCOUNT_NOT_FOUND');
  const failed = async (reason: 'ACCOUNT_IN_USE' | 'PROVIDER_ALREADY_LINKED') => {
    await auditFailure(deps, em, meta, { provider: client.id, reason, userId, purpose: 'link' });
    return reason === 'ACCOUNT_IN_USE' ? accountInUse(client) : alreadyLinked(client);
  };

  const holder = await em.findOne(
    LinkedAccount,
    { provider: client.id, providerUserId: profile.providerUserId },
    { fields: ['user'] },
  );
  if (holder) {
    if (holder.user.id === userId) return user; // linked already: nothing to do
    throw await failed('ACCOUNT_IN_USE');
  }
  if ((await em.count(LinkedAccount, { user: userId, provider: client.id })) > 0) {
    throw await failed('PROVIDER_ALREADY_LINKED');
  }
  try {
    await em.transactional(async (tx) => {
      const now = new Date(deps.clock.now());
      tx.create(LinkedAccount, {
        id: randomUUID(),
        user: userId,
        provider: client.id,
        providerUserId: profile.providerUserId,
        email: profile.email,
        linkedAt: now,
      });
      audit(tx, meta, { type: 'OAUTH_LINKED', userId, detail: { provider: client.id } }, now);
    });
  } catch (error) {
    if (!(error instanceof UniqueConstraintViolationException)) throw error;
    // A concurrent link won: of this provider account (to anyone), or of another one of this provider to us.
    const taken = await em.count(LinkedAccount, { provider: client.id, providerUserId: profile.providerUserId });
    throw await failed(taken > 0 ? 'ACCOUNT_IN_USE' : 'PROVIDER_ALREADY_LINKED');
  }
  return user;
}
