// linkOAuthProvider: connects a provider account to the signed-in user who started the attempt.
import { randomUUID } from 'node:crypto';
import { LockMode, UniqueConstraintViolationException } from '@mikro-orm/core';
import { audit } from '../audit/audit.ts';
import { type Call, callerAccount, callerOf } from '../call.ts';
import { LinkedAccount, User, type UserRow } from '../db/entities.ts';
import { transactional } from '../db/transaction.ts';
import { badInput } from '../errors.ts';
import { holdCallerSession } from '../sessions/caller-session.ts';
import { accountInUse, auditFailure, type CallbackDeps, type OAuthCodeInput, redeemCallback } from './callback.ts';
import type { ProviderClient } from './provider-client.ts';

const alreadyLinked = (client: ProviderClient) =>
  badInput('provider', `Another ${client.name} account is linked to this account; unlink it first`);

/** The signed-in caller: the user and the session of the access token. */
/**
 * Links the provider account to the caller. OAUTH_ACCOUNT_IN_USE when it is linked to someone else; UNAUTHENTICATED
 * when the caller's session was revoked while the link was under way.
 */
export async function linkOAuthProvider(deps: CallbackDeps, call: Call, input: OAuthCodeInput): Promise<UserRow> {
  const { em, meta } = call;
  const caller = callerOf(call);
  const userId = caller.sub;
  const { client, profile } = await redeemCallback(deps, em, meta, input, userId);
  const user = await callerAccount(call);
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
    await transactional(em, async (tx) => {
      // The user row's lock orders this against a password reset or verification of the account's email (which
      // takes it first, removes links made before the proof and revokes every session). Had one committed since
      // this request's token was checked, the caller's session is gone: a link made now would survive the proof.
      await tx.find(
        User,
        { id: userId },
        { fields: ['id'], lockMode: LockMode.PESSIMISTIC_WRITE, disableIdentityMap: true },
      );
      // Held, not only counted: a snapshot count lets a revocation commit and be answered before this link does.
      await holdCallerSession(tx, caller);
      const now = new Date(deps.clock.now());
      tx.create(LinkedAccount, {
        id: randomUUID(),
        user: userId,
        provider: client.id,
        providerUserId: profile.providerUserId,
        // Only an address the provider verified is kept (and shown); null otherwise.
        email: profile.verifiedEmail,
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
