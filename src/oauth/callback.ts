// What sign-in and linking share: take the state (once), check it was started for this provider, purpose and
// client, redeem the code at the provider, and record every failure in the audit trail.
import { audit, type RequestMeta } from '../audit/audit.ts';
import type { ClientRegistry } from '../clients/registry.ts';
import type { Clock } from '../clock.ts';
import type { Em } from '../db/orm.ts';
import { AuthError, badInput } from '../errors.ts';
import { type OAuth, redirectUriAllowed } from './oauth.ts';
import type { ProviderClient, ProviderProfile } from './provider-client.ts';

export interface OAuthCodeInput {
  readonly provider: string;
  readonly code: string;
  readonly state: string;
  /**
   * The client the attempt is for. Optional: the state remembers the client that started it, and that one gets
   * the session; a different one here is BAD_USER_INPUT (field clientId), never a switch of client.
   */
  readonly clientId?: string | null;
}

export interface CallbackDeps {
  readonly clock: Clock;
  readonly oauth: OAuth;
  readonly clients: ClientRegistry;
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
  | 'PROVIDER_ALREADY_LINKED'
  /** The callback named another client than the one that started the attempt. */
  | 'CLIENT_MISMATCH'
  /** The client that started the attempt is gone or disabled, or no longer allows its redirect URI. */
  | 'CLIENT_REFUSED';

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
 * Redeems a callback for `linkUserId` (null: a sign-in), and names the client the attempt was started for
 * (`clientId`: a sign-in's session is that client's). A state that is unknown, spent, expired, started for another provider, or
 * for another purpose or user is OAUTH_FAILED, and is spent all the same. A `clientId` in the input that is
 * unknown or disabled is BAD_USER_INPUT before the state is touched; one that differs from the state's, or a
 * state whose client was disabled since, is BAD_USER_INPUT (field clientId) and spends the state.
 */
export async function redeemCallback(
  deps: CallbackDeps,
  em: Em,
  meta: RequestMeta,
  input: OAuthCodeInput,
  linkUserId: string | null,
): Promise<{ client: ProviderClient; profile: ProviderProfile; clientId: string }> {
  const client = deps.oauth.providers.get(input.provider);
  const purpose = linkUserId === null ? 'login' : 'link';
  const named = input.clientId ?? null;
  // A wrong clientId must not cost the attempt: the state stays usable with the right one.
  if (named !== null) deps.clients.forSignIn(named);
  const attempt = await deps.oauth.states.take(input.state);
  if (!attempt || attempt.provider !== client.id || attempt.linkUserId !== linkUserId) {
    await auditFailure(deps, em, meta, { provider: client.id, reason: 'INVALID_STATE', userId: linkUserId, purpose });
    throw invalidState();
  }
  const failed = (reason: 'CLIENT_MISMATCH' | 'CLIENT_REFUSED') =>
    auditFailure(deps, em, meta, { provider: client.id, reason, userId: linkUserId, purpose });
  // The client is the one that started the attempt (bound into the state): a callback cannot move it elsewhere.
  if (named !== null && named !== attempt.clientId) {
    await failed('CLIENT_MISMATCH');
    throw badInput('clientId', 'This sign-in was started for another client');
  }
  const signInClient = deps.clients.get(attempt.clientId);
  if (!signInClient || signInClient.disabled) {
    await failed('CLIENT_REFUSED');
    throw badInput('clientId', 'Unknown or disabled client');
  }
  // Checked again at the end: the client may have dropped the URI from its redirectUris since the start.
  if (!redirectUriAllowed(deps.oauth, signInClient, attempt.redirectUri)) {
    await failed('CLIENT_REFUSED');
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
    return { client, profile, clientId: signInClient.id };
  } catch (error) {
    await auditFailure(deps, em, meta, { provider: client.id, reason: 'PROVIDER_ERROR', userId: linkUserId, purpose });
    throw error;
  }
}
