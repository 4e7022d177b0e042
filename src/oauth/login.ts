// loginWithOAuth: a linked provider account signs in; an unknown one becomes a new account when the provider
// verified its email, unless that email already belongs to one (ACCOUNT_EXISTS: sign in and link instead).
import { randomUUID } from 'node:crypto';
import { LockMode, UniqueConstraintViolationException } from '@mikro-orm/core';
import { audit } from '../audit/audit.ts';
import type { Call } from '../call.ts';
import { LinkedAccount, User, type UserRow } from '../db/entities.ts';
import { transactional } from '../db/transaction.ts';
import { AuthError } from '../errors.ts';
import type { MfaKit } from '../mfa/factors.ts';
import type { PasskeyFactor } from '../mfa/passkey-factor.ts';
import { requireSecondFactor } from '../mfa/sign-in-step.ts';
import type { IssuedTokens, Sessions, TokenDelivery } from '../sessions/sessions.ts';
import { accountInUse, auditFailure, type CallbackDeps, type OAuthCodeInput, redeemCallback } from './callback.ts';
import type { ProviderClient, ProviderProfile } from './provider-client.ts';

export interface OAuthLoginDeps extends CallbackDeps {
  readonly sessions: Sessions;
  /** The second factor: a linked account with MFA on gets MFA_REQUIRED and an mfaToken instead of a session. */
  readonly mfa: MfaKit;
  readonly passkeyFactor?: PasskeyFactor;
}

/** A provider's display name fitted to ours: no control characters, at most 100 code points, null when empty. */
function displayNameOf(profile: ProviderProfile): string | null {
  const name = [...(profile.displayName ?? '').replace(/\p{Cc}/gu, ' ').trim()].slice(0, 100).join('').trim();
  return name === '' ? null : name;
}

const accountExists = (client: ProviderClient) =>
  new AuthError(
    'ACCOUNT_EXISTS',
    `An account with this email already exists: sign in to it, then link ${client.name} from there`,
  );

export async function loginWithOAuth(
  deps: OAuthLoginDeps,
  call: Call,
  input: OAuthCodeInput & { readonly tokenDelivery?: TokenDelivery | null },
): Promise<IssuedTokens> {
  const delivery = input.tokenDelivery ?? 'BODY';
  const { em, meta } = call;
  // The session is for the client that started the attempt (the state's), which the input may only confirm.
  const { client, profile, clientId } = await redeemCallback(deps, em, meta, input, null);
  const now = new Date(deps.clock.now());
  const linked = await em.findOne(
    LinkedAccount,
    { provider: client.id, providerUserId: profile.providerUserId },
    { populate: ['user'] },
  );
  if (linked) {
    const user = linked.user as UserRow;
    // The provider proved the first factor; with MFA on, that earns an mfaToken for verifyMfa, not a session.
    const binding = { clientId, delivery, firstFactor: { kind: 'link', linkId: linked.id } } as const;
    await requireSecondFactor(deps, call, user, binding);
    const opened = await transactional(em, async (tx) => {
      // Under the user row's lock (which the transaction that proves an email takes first), the link must still
      // be there: a password reset that removed it meanwhile also revoked every session, and this one would escape.
      await tx.find(
        User,
        { id: user.id },
        { fields: ['id'], lockMode: LockMode.PESSIMISTIC_WRITE, disableIdentityMap: true },
      );
      if ((await tx.count(LinkedAccount, { id: linked.id, user: user.id })) === 0) return null;
      const opened = await deps.sessions.open(tx, user, meta, delivery, 'existing', clientId);
      // Again under the user row's lock (open's), which every MFA change takes exclusively before revoking the
      // user's sessions: MFA turned on since the look above finds this session not yet there to revoke.
      await requireSecondFactor(deps, { ...call, em: tx }, user, binding);
      audit(
        tx,
        meta,
        { type: 'OAUTH_LOGIN', userId: user.id, sessionId: opened.row.id, detail: { provider: client.id } },
        now,
      );
      return opened;
    });
    if (!opened) {
      await auditFailure(deps, em, meta, {
        provider: client.id,
        reason: 'LINK_REMOVED',
        userId: user.id,
        purpose: 'login',
      });
      throw new AuthError('OAUTH_FAILED', `This ${client.name} account was unlinked meanwhile; start again`);
    }
    return deps.sessions.issue(opened.user, opened.row, opened.refreshToken);
  }

  // An address the provider did not verify could be anyone's: it neither creates an account nor is looked up,
  // so the answer is the same whether or not an account has it.
  const email = profile.verifiedEmail;
  if (email === null) {
    await auditFailure(deps, em, meta, { provider: client.id, reason: 'NO_VERIFIED_EMAIL', purpose: 'login' });
    throw new AuthError(
      'OAUTH_FAILED',
      `${client.name} did not share a verified email address, which a new account needs; verify one there and try again`,
    );
  }
  const existing = await em.findOne(User, { email }, { fields: ['id'] });
  if (existing) {
    // Verified or not on our side: only the account holder may connect the two.
    await auditFailure(deps, em, meta, {
      provider: client.id,
      reason: 'ACCOUNT_EXISTS',
      userId: existing.id,
      purpose: 'login',
    });
    throw accountExists(client);
  }
  try {
    const { user, row, refreshToken } = await transactional(em, async (tx) => {
      const user = tx.create(User, {
        id: randomUUID(),
        email,
        passwordHash: null,
        // The provider vouched for it, which is all a verification code would prove.
        emailVerified: true,
        displayName: displayNameOf(profile),
        roles: 'USER',
        createdAt: now,
        updatedAt: now,
      });
      tx.create(LinkedAccount, {
        id: randomUUID(),
        user,
        provider: client.id,
        providerUserId: profile.providerUserId,
        email,
        linkedAt: now,
      });
      const opened = await deps.sessions.open(tx, user, meta, delivery, 'created', clientId);
      audit(
        tx,
        meta,
        { type: 'OAUTH_SIGNUP', userId: user.id, sessionId: opened.row.id, detail: { provider: client.id } },
        now,
      );
      return opened;
    });
    return deps.sessions.issue(user, row, refreshToken);
  } catch (error) {
    if (!(error instanceof UniqueConstraintViolationException)) throw error;
    // A concurrent sign-in got there first: with this provider account, or with another one of this email.
    const taken = await em.count(LinkedAccount, { provider: client.id, providerUserId: profile.providerUserId });
    await auditFailure(deps, em, meta, {
      provider: client.id,
      reason: taken > 0 ? 'ACCOUNT_IN_USE' : 'ACCOUNT_EXISTS',
      purpose: 'login',
    });
    throw taken > 0 ? accountInUse(client) : accountExists(client);
  }
}
