// What sign-in and linking share: take the state (once), check it was started for this provider and purpose,
// redeem the code at the provider, and record every failure in the audit trail.
import { audit, type RequestMeta } from '../audit/audit.ts';
import type { Clock } from '../clock.ts';
import type { Em } from '../db/orm.ts';
import { AuthError } from '../errors.ts';
import type { OAuth } from './oauth.ts';
import type { ProviderClient, ProviderProfile } from './provider-client.ts';

export interface OAuthCodeInput {
  readonly provider: string;
  readonly code: string;
  readonly state: string;
}

export interface CallbackDeps {
  readonly clock: Clock;
  readonly oauth: OAuth;
}

export type FailureReason =
  | 'INVALID_STATE'
  | 'PROVIDER_ERROR'
  /** The provider shared no email, or did not say it verified it (a new account needs one it did). */
  | 'NO_VERIFIED_EMAIL'
  /** The provider account's link was removed while the sign-in was under way. */
  | 'LINK_REMOVED'
  | 'ACCOUNT_EXISTS'
  | 'ACCOUNT_IN_USE'
  | 'PROVIDER_ALREADY_LINKED';

/** Writes an OAUTH_FAILED audit row on its own (the attempt's own writes, if any, were rolled back). */
export async function auditFailure(
  deps: CallbackDeps,
  em: Em,
  meta: RequestMeta,
  entry: { provider: string; reason: FailureReason; userId?: string | null; purpose: 'login' | 'link' },
): Promise<void> {
  audit(
    em,
    meta,
    {
      type: 'OAUTH_FAILED',
      userId: entry.userId ?? null,
      detail: { provider: entry.provider, reason: entry.reason, purpose: entry.purpose },
    },
    new Date(deps.clock.now()),
  );
  await em.flush();
}

export const accountInUse = (client: ProviderClient) =>
  new AuthError('OAUTH_ACCOUNT_IN_USE', `This ${client.name} account is already linked to another account`);

const invalidState = () => new AuthError('OAUTH_FAILED', 'The sign-in attempt is invalid or has expired; start again');

/**
 * Redeems a callback for `linkUserId` (null: a sign-in). A state that is unknown, spent, expired, started for
 * another provider, or for another purpose or user is OAUTH_FAILED, and is spent all the same.
 */
export async function redeemCallback(
  deps: CallbackDeps,
  em: Em,
  meta: RequestMeta,
  input: OAuthCodeInput,
  linkUserId: string | null,
): Promise<{ client: ProviderClient; profile: ProviderProfile }> {
  const client = deps.oauth.providers.get(input.provider);
  const purpose = linkUserId === null ? 'login' : 'link';
  const attempt = await deps.oauth.states.take(input.state);
  if (!attempt || attempt.provider !== client.id || attempt.linkUserId !== linkUserId) {
    await auditFailure(deps, em, meta, { provider: client.id, reason: 'INVALID_STATE', userId: linkUserId, purpose });
    throw invalidState();
  }
  try {
    const profile = await client.exchange({
      redirectUri: attempt.redirectUri,
      code: input.code,
      state: input.state,
      codeVerifier: attempt.codeVerifier,
      nonce: attempt.nonce,
    });
    return { client, profile };
  } catch (error) {
    await auditFailure(deps, em, meta, { provider: client.id, reason: 'PROVIDER_ERROR', userId: linkUserId, purpose });
    throw error;
  }
}
