// The second step of a sign-in: after the first factor (a password, a provider account) is proven, an account
// with MFA on gets MFA_REQUIRED with a single-use mfaToken instead of a session.
import { audit } from '../audit/audit.ts';
import type { Call } from '../call.ts';
import type { UserRow } from '../db/entities.ts';
import { AuthError } from '../errors.ts';
import type { TokenDelivery } from '../sessions/sessions.ts';
import type { FirstFactor } from './challenges.ts';
import type { MfaDeps } from './factors.ts';
import { mfaMethodsOf } from './status.ts';

export interface SignInBinding {
  /** The client the session will be for (already checked by the first step). */
  readonly clientId: string;
  /** The delivery the sign-in asked for; verifyMfa may choose another. */
  readonly delivery: TokenDelivery;
  /** What the first step proved (a password, a provider link): verifyMfa checks it still holds. */
  readonly firstFactor: FirstFactor;
}

/**
 * Nothing when MFA is off for `user`. Otherwise throws MFA_REQUIRED with `mfaToken` (5 minutes, single use, bound
 * to the user, the client, the delivery and this attempt), `methods`, and, when the user has passkeys and they
 * are built in, `passkeyOptions` (a challenge bound to this step). ACCOUNT_DISABLED for a disabled account:
 * told, like login tells it, only to whoever proved the first factor.
 */
export async function requireSecondFactor(
  deps: Pick<MfaDeps, 'mfa' | 'passkeyFactor' | 'clock'>,
  call: Call,
  user: Pick<UserRow, 'id' | 'disabled'>,
  binding: SignInBinding,
): Promise<void> {
  const methods = await mfaMethodsOf(call.em, user.id);
  if (methods.length === 0) return;
  if (user.disabled) {
    audit(
      call.em,
      call.meta,
      { type: 'LOGIN_FAILED', userId: user.id, detail: { reason: 'ACCOUNT_DISABLED' } },
      new Date(deps.clock.now()),
    );
    await call.em.flush();
    throw new AuthError('ACCOUNT_DISABLED', 'This account has been disabled');
  }
  const { token, challenge } = await deps.mfa.challenges.issue({ userId: user.id, ...binding });
  const passkeyOptions = methods.includes('PASSKEY')
    ? await deps.passkeyFactor?.optionsFor(call.em, user.id, challenge.id)
    : undefined;
  throw new AuthError('MFA_REQUIRED', 'A second factor is required: call verifyMfa with the mfaToken', {
    mfaToken: token,
    methods,
    ...(passkeyOptions ? { passkeyOptions } : {}),
  });
}
