// TOTP for the signed-in user: start an enrolment (secret, otpauth URI, QR code), confirm it with a first code
// (TOTP on, recovery codes shown once), disable it, regenerate recovery codes. Each change revokes the user's
// other sessions (MFA_CHANGED) and is audited.
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { audit } from '../audit/audit.ts';
import { type Call, callerAccount, callerOf } from '../call.ts';
import { MfaTotp, Passkey, RecoveryCode, type UserRow } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { transactional } from '../db/transaction.ts';
import { AuthError } from '../errors.ts';
import { codeFactor, type MfaDeps, type Proven, proveFactor, refuseUnspent } from './factors.ts';
import { replaceRecoveryCodes } from './recovery-codes.ts';
import { enrollmentOf, newTotpSecret } from './totp.ts';
import { lockUserForMfaChange } from './user-lock.ts';

export interface TotpEnrollment {
  readonly secret: string;
  readonly otpauthUri: string;
  readonly qrCodeSvg: string;
}

const alreadyOn = () =>
  new AuthError('BAD_USER_INPUT', 'TOTP is already on: disable it first to enrol another authenticator');

/**
 * A new TOTP secret for the caller, pending until confirmTotpEnrollment; replaces an unconfirmed one. Refused
 * (BAD_USER_INPUT) while TOTP is on: replacing a working authenticator takes a code (disableTotp first).
 */
export async function startTotpEnrollment(deps: MfaDeps, call: Call): Promise<TotpEnrollment> {
  const user = await callerAccount(call);
  const { sid } = callerOf(call);
  const secret = newTotpSecret();
  const sealed = deps.mfa.crypto.sealSecret(secret, user.id);
  const now = new Date(deps.clock.now());
  const write = () =>
    transactional(call.em, async (tx) => {
      await lockUserForMfaChange(tx, user.id, sid);
      const [row] = await tx.find(
        MfaTotp,
        { user: user.id },
        { fields: ['user', 'confirmedAt'], disableIdentityMap: true },
      );
      if (row?.confirmedAt) throw alreadyOn();
      if (row) {
        await tx.nativeUpdate(
          MfaTotp,
          { user: user.id, confirmedAt: null },
          { secretEncrypted: sealed, lastUsedStep: null, createdAt: now },
        );
      } else {
        await tx.insert(MfaTotp, {
          user: user.id,
          secretEncrypted: sealed,
          confirmedAt: null,
          lastUsedStep: null,
          createdAt: now,
        });
      }
    });
  try {
    await write();
  } catch (error) {
    // Two starts at once on SQLite (no row lock to wait on): the second one's insert lost; it replaces instead.
    if (!(error instanceof UniqueConstraintViolationException)) throw error;
    await write();
  }
  return enrollmentOf(secret, deps.mfa.issuer, user.email);
}

/**
 * Spends `proven` and commits `work` with the revocation of the caller's other sessions (MFA_CHANGED), then
 * publishes it. When the factor is not spent (used or removed meanwhile) nothing changed and nothing is revoked:
 * INVALID_CODE, audited with what the spend found (purpose `purpose`).
 */
async function changeMfa<T>(
  deps: MfaDeps,
  call: Call,
  user: UserRow,
  proven: Proven,
  purpose: string,
  work: (tx: Em) => Promise<T>,
): Promise<T> {
  const caller = callerOf(call);
  const changed = await transactional(call.em, async (tx) => {
    await lockUserForMfaChange(tx, user.id, caller.sid);
    const spend = await proven.spend(tx);
    if (spend !== 'spent') return { spend };
    const result = await work(tx);
    const revocation = await deps.sessions.revokeIn(tx, {
      userId: user.id,
      sessionIds: 'all',
      reason: 'MFA_CHANGED',
      meta: call.meta,
      except: caller.sid,
    });
    return { spend, result, revocation };
  });
  if (changed.spend !== 'spent') return refuseUnspent(deps, call, user.id, proven.method, purpose, changed.spend);
  await deps.sessions.published(changed.revocation);
  return changed.result;
}

/**
 * Turns TOTP on with a current code of the pending secret; returns 10 new recovery codes (replacing any old ones),
 * shown this once. BAD_USER_INPUT when nothing is pending; INVALID_CODE for a wrong code.
 */
export async function confirmTotpEnrollment(deps: MfaDeps, call: Call, code: string): Promise<string[]> {
  const user = await callerAccount(call);
  const pending = await call.em.count(MfaTotp, { user: user.id, confirmedAt: null });
  if (pending === 0) {
    const on = await call.em.count(MfaTotp, { user: user.id });
    throw on > 0
      ? alreadyOn()
      : new AuthError('BAD_USER_INPUT', 'No TOTP enrolment is pending: startTotpEnrollment first');
  }
  const proven = await proveFactor(deps, call, user, { method: 'TOTP', code, pending: true }, { purpose: 'enable' });
  const now = new Date(deps.clock.now());
  return changeMfa(deps, call, user, proven, 'enable', async (tx) => {
    await tx.nativeUpdate(MfaTotp, { user: user.id, confirmedAt: null }, { confirmedAt: now });
    audit(tx, call.meta, { type: 'MFA_TOTP_ENABLED', userId: user.id }, now);
    return replaceRecoveryCodes(tx, deps.mfa.crypto, user.id, now);
  });
}

/**
 * Turns TOTP off with a current TOTP code or a recovery code. Recovery codes go too when no passkey is left.
 * BAD_USER_INPUT when TOTP is not on.
 */
export async function disableTotp(deps: MfaDeps, call: Call, code: string): Promise<UserRow> {
  const user = await callerAccount(call);
  if ((await call.em.count(MfaTotp, { user: user.id, confirmedAt: { $ne: null } })) === 0) {
    throw new AuthError('BAD_USER_INPUT', 'TOTP is not on');
  }
  const factor = codeFactor(code);
  const proven = await proveFactor(deps, call, user, factor, { purpose: 'disable' });
  const now = new Date(deps.clock.now());
  await changeMfa(deps, call, user, proven, 'disable', async (tx) => {
    await tx.nativeDelete(MfaTotp, { user: user.id });
    if ((await tx.count(Passkey, { user: user.id })) === 0) await tx.nativeDelete(RecoveryCode, { user: user.id });
    audit(tx, call.meta, { type: 'MFA_TOTP_DISABLED', userId: user.id, detail: { with: factor.method } }, now);
  });
  return user;
}

/** A new set of 10 recovery codes (all old ones stop working), for a current TOTP code. */
export async function regenerateRecoveryCodes(deps: MfaDeps, call: Call, code: string): Promise<string[]> {
  const user = await callerAccount(call);
  if ((await call.em.count(MfaTotp, { user: user.id, confirmedAt: { $ne: null } })) === 0) {
    throw new AuthError('BAD_USER_INPUT', 'TOTP is not on: recovery codes come with it');
  }
  const proven = await proveFactor(deps, call, user, { method: 'TOTP', code }, { purpose: 'regenerate' });
  const now = new Date(deps.clock.now());
  return changeMfa(deps, call, user, proven, 'regenerate', async (tx) => {
    audit(tx, call.meta, { type: 'MFA_RECOVERY_CODES_REGENERATED', userId: user.id }, now);
    return replaceRecoveryCodes(tx, deps.mfa.crypto, user.id, now);
  });
}
