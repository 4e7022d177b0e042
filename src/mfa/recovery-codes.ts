// Recovery codes: 10 codes of 10 characters from the code alphabet, stored as keyed hashes (HMAC with the MFA
// key), each spent once; a new set replaces the whole old one.
import { randomInt } from 'node:crypto';
import { CODE_ALPHABET } from '../account/codes.ts';
import { RecoveryCode } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import type { MfaCrypto } from './crypto.ts';

export const RECOVERY_CODE_COUNT = 10;
export const RECOVERY_CODE_LENGTH = 10;

/** People type them: case, spaces and dashes do not matter. */
export const normalizeRecoveryCode = (input: string): string => input.replace(/[\s-]/g, '').toUpperCase();

function newRecoveryCode(): string {
  let code = '';
  for (let i = 0; i < RECOVERY_CODE_LENGTH; i++) code += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
  return code;
}

/**
 * Deletes the user's recovery codes and stores a new set inside the caller's transaction; returns the codes, to be
 * shown once (only their hashes are kept).
 */
export async function replaceRecoveryCodes(tx: Em, crypto: MfaCrypto, userId: string, now: Date): Promise<string[]> {
  await tx.nativeDelete(RecoveryCode, { user: userId });
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
  for (const code of codes) {
    tx.create(RecoveryCode, {
      user: userId,
      codeHash: crypto.hashRecoveryCode(userId, code),
      usedAt: null,
      createdAt: now,
    });
  }
  return codes;
}

/** Whether `input` is one of the user's unspent recovery codes (nothing is spent). */
export async function hasRecoveryCode(em: Em, crypto: MfaCrypto, userId: string, input: string): Promise<boolean> {
  const code = normalizeRecoveryCode(input);
  if (code.length !== RECOVERY_CODE_LENGTH) return false;
  const found = await em.count(RecoveryCode, {
    user: userId,
    codeHash: crypto.hashRecoveryCode(userId, code),
    usedAt: null,
  });
  return found > 0;
}

/**
 * Spends the recovery code `input` inside the caller's transaction: a conditional UPDATE, so of concurrent uses of
 * one code exactly one gets true.
 */
export async function spendRecoveryCode(
  tx: Em,
  crypto: MfaCrypto,
  userId: string,
  input: string,
  now: Date,
): Promise<boolean> {
  const code = normalizeRecoveryCode(input);
  const changed = await tx.nativeUpdate(
    RecoveryCode,
    { user: userId, codeHash: crypto.hashRecoveryCode(userId, code), usedAt: null },
    { usedAt: now },
  );
  return changed > 0;
}

/**
 * Whether the recovery code `input` (spent or not) is still one of the user's: its set has not been replaced
 * (regenerateRecoveryCodes) nor deleted with the account's last other factor (disableTotp or removePasskey with
 * nothing left, resetUserMfa). The rule is what the account accepts now: a replaced set is taken back (it may have
 * leaked), while TOTP turned off with a passkey left keeps the codes, which still finish a sign-in started after it.
 * A new set repeating this code's hash is a 1 in 32^10 chance per code, not a concern.
 */
export async function recoveryCodeStands(em: Em, crypto: MfaCrypto, userId: string, input: string): Promise<boolean> {
  const code = normalizeRecoveryCode(input);
  return (await em.count(RecoveryCode, { user: userId, codeHash: crypto.hashRecoveryCode(userId, code) })) > 0;
}
