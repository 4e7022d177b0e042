// Recovery codes: 10 codes of 10 characters from the code alphabet, stored as keyed hashes (HMAC with the MFA
// key), each spent once; a new set replaces the whole old one.
import { randomInt } from 'node:crypto';
import { LockMode } from '@mikro-orm/core';
import { CODE_ALPHABET } from '../account/codes.ts';
import { RecoveryCode } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import type { MfaCrypto } from './crypto.ts';
import type { Spend } from './factors.ts';

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
 * one code exactly one gets `spent`. When it changes nothing, `used` if the code is still one of the user's, else
 * `removed` (its set replaced or deleted since it was checked).
 */
export async function spendRecoveryCode(
  tx: Em,
  crypto: MfaCrypto,
  userId: string,
  input: string,
  now: Date,
): Promise<Spend> {
  const codeHash = crypto.hashRecoveryCode(userId, normalizeRecoveryCode(input));
  const changed = await tx.nativeUpdate(RecoveryCode, { user: userId, codeHash, usedAt: null }, { usedAt: now });
  if (changed > 0) return 'spent';
  // A locking read: on MariaDB a plain one could answer from the transaction's snapshot, older than the change
  // that the UPDATE, which reads the latest rows, missed the code for.
  const [still] = await tx.find(
    RecoveryCode,
    { user: userId, codeHash },
    { fields: ['id'], lockMode: LockMode.PESSIMISTIC_WRITE, disableIdentityMap: true },
  );
  return still ? 'used' : 'removed';
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
