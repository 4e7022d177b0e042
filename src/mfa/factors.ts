// Checking a second factor (a TOTP code, a recovery code, a passkey assertion) the way every secret is checked:
// the account's failed-sign-in attempt reserved first (shared with login), then compared, then spent by the
// caller's transaction, where a factor that was already used (no replay) or taken off the account meanwhile loses.
import { audit } from '../audit/audit.ts';
import { auditLockouts } from '../auth/login.ts';
import type { Call } from '../call.ts';
import type { Clock } from '../clock.ts';
import { MfaTotp, type UserRow } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { AuthError } from '../errors.ts';
import { type GuessLimit, withAttempt } from '../limits/attempts.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import type { Sessions } from '../sessions/sessions.ts';
import type { MfaChallenges } from './challenges.ts';
import type { MfaCrypto } from './crypto.ts';
import { type PasskeyFactor, passkeyStands } from './passkey-factor.ts';
import { hasRecoveryCode, recoveryCodeStands, spendRecoveryCode } from './recovery-codes.ts';
import type { MfaMethod } from './status.ts';
import { spendStep, stepFor } from './totp.ts';

/** The MFA parts createApp builds once. */
export interface MfaKit {
  readonly crypto: MfaCrypto;
  readonly challenges: MfaChallenges;
  /** The issuer an otpauth URI names (PRODUCT_NAME). */
  readonly issuer: string;
  /** Wrong second factors per user (RATE_LIMIT_MFA_ATTEMPTS), which a right password does not forget. */
  readonly guesses: GuessLimit;
}

/** What the MFA flows take from Services. */
export interface MfaDeps {
  readonly clock: Clock;
  readonly sessions: Sessions;
  readonly limits: Pick<RateLimits, 'login'>;
  readonly mfa: MfaKit;
  /** Passkeys as a second factor; absent until passkeys are built in. */
  readonly passkeyFactor?: PasskeyFactor;
}

export type Factor =
  | { readonly method: 'TOTP'; readonly code: string; readonly pending?: boolean }
  | { readonly method: 'RECOVERY_CODE'; readonly code: string }
  | { readonly method: 'PASSKEY'; readonly response: unknown; readonly mfaTokenId: string };

/**
 * What spending a factor that matched found, decided inside the spend's transaction: `spent` now; `used` already
 * (a replay, or a race lost to another use of the same code); `removed`, taken off the account since it was checked
 * (TOTP disabled or enrolled anew, the recovery-code set replaced or deleted).
 */
export type Spend = 'spent' | 'used' | 'removed';

/** A factor that matched, to be spent inside the caller's transaction. */
export interface Proven {
  readonly method: MfaMethod;
  spend(tx: Em): Promise<Spend>;
  /**
   * Whether the factor is still the user's, read on `tx` (after its spend, in a later transaction): TOTP still on
   * with the secret the code matched, the passkey that signed still registered, the recovery code's set still the
   * current one. For a caller that acts in another transaction than the spend's (verifyMfa's session), under the
   * user row's lock, which every factor change takes first (user-lock.ts): a change committed in between revoked
   * every session there was, not the one this factor is about to open.
   */
  stillStands(tx: Em): Promise<boolean>;
}

/** A code field that takes either: six digits are a TOTP code, anything else a recovery code. */
export const codeFactor = (code: string): Factor =>
  /^\d{6}$/.test(code.replace(/\s/g, '')) ? { method: 'TOTP', code } : { method: 'RECOVERY_CODE', code };

/** What the caller hears for a wrong, replayed or unknown factor alike. */
export const invalidMfaCode = (field = 'code'): AuthError =>
  new AuthError('INVALID_CODE', 'The code is wrong or was already used', { field });

async function check(deps: MfaDeps, em: Em, userId: string, factor: Factor, now: number): Promise<Proven | null> {
  const { crypto } = deps.mfa;
  switch (factor.method) {
    case 'TOTP': {
      const [row] = await em.find(
        MfaTotp,
        { user: userId, confirmedAt: factor.pending ? null : { $ne: null } },
        { fields: ['user', 'secretEncrypted'], disableIdentityMap: true },
      );
      const step = row ? stepFor(crypto, row, userId, factor.code, now) : null;
      if (!row || step === null) return null;
      const confirmed = !factor.pending;
      const { secretEncrypted } = row;
      return {
        method: 'TOTP',
        spend: (tx) => spendStep(tx, userId, secretEncrypted, step, confirmed),
        // The same enrolment: disabling and enrolling again makes a new secret.
        stillStands: async (tx) =>
          (await tx.count(MfaTotp, { user: userId, secretEncrypted, confirmedAt: confirmed ? { $ne: null } : null })) >
          0,
      };
    }
    case 'RECOVERY_CODE': {
      if (!(await hasRecoveryCode(em, crypto, userId, factor.code))) return null;
      return {
        method: 'RECOVERY_CODE',
        spend: (tx) => spendRecoveryCode(tx, crypto, userId, factor.code, new Date(deps.clock.now())),
        stillStands: (tx) => recoveryCodeStands(tx, crypto, userId, factor.code),
      };
    }
    case 'PASSKEY': {
      if (!deps.passkeyFactor) return null;
      // The passkey side spends its challenge and checks the counter itself.
      const passkeyId = await deps.passkeyFactor.verify(em, userId, factor.mfaTokenId, factor.response);
      if (passkeyId === null) return null;
      return {
        method: 'PASSKEY',
        spend: async () => 'spent',
        // That passkey, not any: removing the one that signed withdraws this proof even if others remain.
        stillStands: (tx) => passkeyStands(tx, userId, passkeyId),
      };
    }
  }
}

export interface ProveOptions {
  /** For the audit trail: what the factor was asked for (sign-in, enable, disable, regenerate). */
  readonly purpose: string;
  /** Runs after the attempt is reserved, before the comparison; may refuse (its error goes to the caller). */
  readonly beforeCompare?: () => Promise<void>;
  /** After a wrong factor, before INVALID_CODE is thrown. */
  readonly onWrong?: () => Promise<void>;
  /** The field INVALID_CODE names (default `code`). */
  readonly field?: string;
}

/**
 * Checks `factor` of `user` under two limits, both reserved before the comparison (so concurrent guesses never
 * exceed either; RATE_LIMITED while one is used up): the user's wrong second factors, and the account's failed
 * sign-ins shared with login. The right password resets the latter, so the former is what bounds the guesses of
 * whoever knows the password. A wrong factor is audited (MFA_FAILED, and any lockout it caused) and refused with
 * INVALID_CODE; a right one is returned, to be spent.
 */
export async function proveFactor(
  deps: MfaDeps,
  call: Call,
  user: Pick<UserRow, 'id' | 'email'>,
  factor: Factor,
  options: ProveOptions,
): Promise<Proven> {
  const now = deps.clock.now();
  const outcome = await withAttempt(deps.mfa.guesses.reserve(user.id), (guess) =>
    withAttempt(deps.limits.login.reserve(user.email, call.meta.ipAddress), async (attempt) => {
      await options.beforeCompare?.();
      const found: { proven: Proven | null } = { proven: null };
      // One comparison settles both reservations.
      const verdict = await attempt.compare(
        async () =>
          (
            await guess.compare(async () => {
              found.proven = await check(deps, call.em, user.id, factor, now);
              return found.proven !== null;
            })
          ).matched,
      );
      return { verdict, proven: found.proven };
    }),
  );
  if (outcome.verdict.matched && outcome.proven) return outcome.proven;
  await options.onWrong?.();
  const at = new Date(now);
  audit(
    call.em,
    call.meta,
    { type: 'MFA_FAILED', userId: user.id, detail: { method: factor.method, purpose: options.purpose } },
    at,
  );
  auditLockouts(call.em, call.meta, outcome.verdict.matched ? [] : outcome.verdict.failure, user.id, at);
  await call.em.flush();
  throw invalidMfaCode(options.field);
}

/** MFA_FAILED for a factor that matched but does not count, then INVALID_CODE (what a wrong factor gets). */
async function refuseMatched(
  deps: MfaDeps,
  call: Call,
  userId: string,
  detail: { readonly method: MfaMethod; readonly purpose: string; readonly reason: string },
  field: string,
): Promise<never> {
  audit(call.em, call.meta, { type: 'MFA_FAILED', userId, detail }, new Date(deps.clock.now()));
  await call.em.flush();
  throw invalidMfaCode(field);
}

/** A factor that matched but lost the race to spend it (a replayed TOTP step, a recovery code used meanwhile). */
const refuseReplay = (
  deps: MfaDeps,
  call: Call,
  userId: string,
  method: MfaMethod,
  purpose: string,
  field = 'code',
): Promise<never> => refuseMatched(deps, call, userId, { method, purpose, reason: 'ALREADY_USED' }, field);

/**
 * A factor that matched, then was taken off the account before its spend (Proven.spend `removed`) or after it,
 * before the caller acted on it (Proven.stillStands false): INVALID_CODE, as if the change had come first, with
 * MFA_FAILED reason FACTOR_REMOVED.
 */
export const refuseRemoved = (
  deps: MfaDeps,
  call: Call,
  userId: string,
  method: MfaMethod,
  purpose: string,
  field = 'code',
): Promise<never> => refuseMatched(deps, call, userId, { method, purpose, reason: 'FACTOR_REMOVED' }, field);

/**
 * A factor that matched but was not spent (Proven.spend): refused as a replay or as a removed factor, whichever
 * the spend found.
 */
export const refuseUnspent = (
  deps: MfaDeps,
  call: Call,
  userId: string,
  method: MfaMethod,
  purpose: string,
  spend: Exclude<Spend, 'spent'>,
  field = 'code',
): Promise<never> =>
  spend === 'removed'
    ? refuseRemoved(deps, call, userId, method, purpose, field)
    : refuseReplay(deps, call, userId, method, purpose, field);
