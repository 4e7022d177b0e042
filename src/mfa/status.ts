// Which second factors a user has: what User.mfaEnabled and User.mfaMethods show and MFA_REQUIRED offers.
import { MfaTotp, Passkey, RecoveryCode } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';

export const MFA_METHODS = ['TOTP', 'PASSKEY', 'RECOVERY_CODE'] as const;
export type MfaMethod = (typeof MFA_METHODS)[number];

/**
 * TOTP when confirmed, PASSKEY when the user has one, RECOVERY_CODE while an unspent code remains (and another
 * factor is on: codes alone are no second factor). Empty when MFA is off.
 */
export async function mfaMethodsOf(em: Em, userId: string): Promise<MfaMethod[]> {
  const [totp, passkeys, codes] = await Promise.all([
    em.count(MfaTotp, { user: userId, confirmedAt: { $ne: null } }),
    em.count(Passkey, { user: userId }),
    em.count(RecoveryCode, { user: userId, usedAt: null }),
  ]);
  const methods: MfaMethod[] = [];
  if (totp > 0) methods.push('TOTP');
  if (passkeys > 0) methods.push('PASSKEY');
  if (methods.length > 0 && codes > 0) methods.push('RECOVERY_CODE');
  return methods;
}
