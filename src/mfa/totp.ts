// TOTP per RFC 6238 (otpauth): SHA-1, 6 digits, 30-second steps, one step of drift either way; a step is
// accepted once per user (mfa_totp.last_used_step), so a code seen over a shoulder cannot be replayed.
import { LockMode } from '@mikro-orm/core';
import { Secret, TOTP } from 'otpauth';
import { renderSVG } from 'uqr';
import { MfaTotp, type MfaTotpRow } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import type { MfaCrypto } from './crypto.ts';
import type { Spend } from './factors.ts';

const TOTP_SETTINGS = { algorithm: 'SHA1', digits: 6, period: 30 } as const;
/** Steps of drift accepted either way. */
export const TOTP_WINDOW = 1;

/** A fresh 160-bit secret (RFC 4226's recommended length), base32 as authenticator apps take it. */
export const newTotpSecret = (): string => new Secret({ size: 20 }).base32;

/** What an authenticator app scans: the otpauth URI naming the issuer and the account, and its QR code as SVG. */
export function enrollmentOf(secret: string, issuer: string, email: string) {
  const otpauthUri = new TOTP({ ...TOTP_SETTINGS, issuer, label: email, secret: Secret.fromBase32(secret) }).toString();
  return { secret, otpauthUri, qrCodeSvg: renderSVG(otpauthUri) };
}

/** The step (30-second counter) `code` belongs to, within the drift window around `now`; null when it is no match. */
export function matchingStep(secret: string, code: string, now: number): number | null {
  const token = code.replace(/\s/g, '');
  if (!/^\d{6}$/.test(token)) return null;
  const totp = new TOTP({ ...TOTP_SETTINGS, secret: Secret.fromBase32(secret) });
  const delta = totp.validate({ token, timestamp: now, window: TOTP_WINDOW });
  return delta === null ? null : totp.counter({ timestamp: now }) + delta;
}

/** The step a code matches for the user's stored secret (decrypted with the MFA key); null for no match. */
export function stepFor(
  crypto: MfaCrypto,
  row: Pick<MfaTotpRow, 'secretEncrypted'>,
  userId: string,
  code: string,
  now: number,
) {
  return matchingStep(crypto.openSecret(row.secretEncrypted, userId), code, now);
}

/**
 * Spends `step` of `userId`'s TOTP inside the caller's transaction, the row locked first. `removed` when the secret
 * the code was checked against (`secretEncrypted`) is no longer the user's (TOTP disabled, or enrolled anew with a
 * new secret); `used` when the step is not later than the last one used (a replay, or a race lost to another
 * submission of a code of the same step), or when the pending enrolment the code was for has been confirmed
 * meanwhile (by another code: it was used); else `spent`. The UPDATE is conditional too, so SQLite (which has no
 * row locks) gives the same answer to concurrent submissions: exactly one wins.
 */
export async function spendStep(
  tx: Em,
  userId: string,
  secretEncrypted: string,
  step: number,
  confirmed: boolean,
): Promise<Spend> {
  const judge = async (): Promise<Spend> => {
    const [row] = await tx.find(
      MfaTotp,
      { user: userId },
      {
        fields: ['user', 'secretEncrypted', 'confirmedAt', 'lastUsedStep'],
        lockMode: LockMode.PESSIMISTIC_WRITE,
        disableIdentityMap: true,
      },
    );
    if (!row || row.secretEncrypted !== secretEncrypted || (confirmed && row.confirmedAt == null)) return 'removed';
    if ((!confirmed && row.confirmedAt != null) || (row.lastUsedStep != null && row.lastUsedStep >= step)) {
      return 'used';
    }
    return 'spent';
  };
  const found = await judge();
  if (found !== 'spent') return found;
  const changed = await tx.nativeUpdate(
    MfaTotp,
    {
      user: userId,
      secretEncrypted,
      confirmedAt: confirmed ? { $ne: null } : null,
      $or: [{ lastUsedStep: null }, { lastUsedStep: { $lt: step } }],
    },
    { lastUsedStep: step },
  );
  if (changed === 1) return 'spent';
  // Only where the read took no lock (SQLite): a change or a spend came between it and the UPDATE; read again.
  const again = await judge();
  return again === 'removed' ? 'removed' : 'used';
}
