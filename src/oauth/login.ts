// loginWithOAuth: a linked provider account signs in; an unknown one becomes a new account, unless its email
// already belongs to one (ACCOUNT_EXISTS: the person signs in and links instead, no silent takeover).
import { randomUUID } from 'node:crypto';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { audit, type RequestMeta } from '../audit/audit.ts';
import { normalizeEmail } from '../auth/validate.ts';
import { LinkedAccount, User, type UserRow } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { AuthError } from '../errors.ts';
import type { IssuedTokens, Sessions } from '../sessions/sessions.ts';
import { accountInUse, auditFailure, type CallbackDeps, type OAuthCodeInput, redeemCallback } from './callback.ts';
import type { ProviderClient, ProviderProfile } from './provider-client.ts';

export interface OAuthLoginDeps extends CallbackDeps {
  readonly sessions: Sessions;
}

/** A provider's display name fitted to ours: no control characters, at most 100 code points, null when empty. */
function displayNameOf(profile: ProviderProfile): string | null {
  const name = [...(profile.displayName ?? '').replace(/\p{Cc}/gu, ' ').trim()].slice(0, 100).join('').trim();
  return name === '' ? null : name;
}

function emailOf(profile: ProviderProfile): string | null {
  if (profile.email === null) return null;
  try {
    return normalizeEmail(profile.email);
  } catch {
    return null;
  }
}

const accountExists = (client: ProviderClient) =>
  new AuthError(
    'ACCOUNT_EXISTS',
    `An account with this email already exists: sign in to it, then link ${client.name} from there`,
  );

export async function loginWithOAuth(
  deps: OAuthLoginDeps,
  em: Em,
  input: OAuthCodeInput,
  meta: RequestMeta,
): Promise<IssuedTokens> {
  const { client, profile } = await redeemCallback(deps, em, meta, input, null);
  const now = new Date(deps.clock.now());
  const linked = await em.findOne(
    LinkedAccount,
    { provider: client.id, providerUserId: profile.providerUserId },
    { populate: ['user'] },
  );
  if (linked) {
    const user = linked.user as UserRow;
    const { row, refreshToken } = await em.transactional(async (tx) => {
      const opened = deps.sessions.open(tx, user, meta);
      audit(
        tx,
        meta,
        { type: 'OAUTH_LOGIN', userId: user.id, sessionId: opened.row.id, detail: { provider: client.id } },
        now,
      );
      return opened;
    });
    return deps.sessions.issue(user, row, refreshToken);
  }

  const email = emailOf(profile);
  if (email === null) {
    await auditFailure(deps, em, meta, { provider: client.id, reason: 'NO_EMAIL', purpose: 'login' });
    throw new AuthError(
      'OAUTH_FAILED',
      `${client.name} did not share a verified email address, which a new account needs; verify one there and try again`,
    );
  }
  const existing = await em.findOne(User, { email }, { fields: ['id'] });
  if (existing) {
    // Whether or not the provider verified the email: only the account holder may connect the two.
    await auditFailure(deps, em, meta, {
      provider: client.id,
      reason: 'ACCOUNT_EXISTS',
      userId: existing.id,
      purpose: 'login',
    });
    throw accountExists(client);
  }
  try {
    const { user, row, refreshToken } = await em.transactional(async (tx) => {
      const user = tx.create(User, {
        id: randomUUID(),
        email,
        passwordHash: null,
        emailVerified: profile.emailVerified,
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
      const opened = deps.sessions.open(tx, user, meta);
      audit(
        tx,
        meta,
        { type: 'OAUTH_SIGNUP', userId: user.id, sessionId: opened.row.id, detail: { provider: client.id } },
        now,
      );
      return { user, ...opened };
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
