// verifyMfa: the second step of a sign-in. One factor for the mfaToken of MFA_REQUIRED; the right one opens the
// session the first step was for (its client; the delivery asked for now, or then).
import { audit } from '../audit/audit.ts';
import type { Call } from '../call.ts';
import { LinkedAccount, User, type UserRow } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { transactional } from '../db/transaction.ts';
import { AuthError, badInput } from '../errors.ts';
import type { IssuedTokens, TokenDelivery } from '../sessions/sessions.ts';
import { type MfaChallenge, passwordStamp } from './challenges.ts';
import { type Factor, type MfaDeps, proveFactor, refuseRemoved, refuseUnspent } from './factors.ts';

export interface VerifyMfaInput {
  readonly mfaToken: string;
  readonly code?: string | null;
  readonly recoveryCode?: string | null;
  readonly passkeyResponse?: unknown;
  /** Where the session's refresh tokens travel; the sign-in's choice when left out. */
  readonly tokenDelivery?: TokenDelivery | null;
}

/**
 * The answer for an mfaToken that is spent, expired, dead or unknown: UNAUTHENTICATED (INVALID_TOKEN) as API.md
 * says, but with a message of its own: INVALID_TOKEN's usual one speaks of the access token, which there is none of.
 */
const deadMfaToken = () =>
  new AuthError('UNAUTHENTICATED', 'The MFA token is spent, expired or unknown: sign in again', {
    reason: 'INVALID_TOKEN',
  });

/** Rolls back an MFA step whose second factor was taken off the account between its spend and the session. */
class FactorRemoved extends Error {}

/** Whether what the first step proved still stands: the same password, the same provider link. */
async function firstFactorHolds(em: Em, user: UserRow, challenge: MfaChallenge): Promise<boolean> {
  const { firstFactor } = challenge;
  if (firstFactor.kind === 'password') return passwordStamp(user.passwordHash) === firstFactor.stamp;
  return (await em.count(LinkedAccount, { id: firstFactor.linkId, user: user.id })) > 0;
}

/**
 * Finishes a sign-in with exactly one factor (else BAD_USER_INPUT). A spent, expired, dead or unknown mfaToken is
 * UNAUTHENTICATED (INVALID_TOKEN); a wrong factor INVALID_CODE, counted against the token (dead after 5 tries,
 * however many arrive at once) and against the account's failed sign-ins. A right factor taken off the account
 * before the session is written (TOTP disabled, the passkey removed, the recovery codes replaced) is INVALID_CODE
 * too, with no session. `deliverable` checks the delivery against the transport (COOKIE needs HTTP).
 */
export async function verifyMfa(
  deps: MfaDeps,
  call: Call,
  input: VerifyMfaInput,
  deliverable: (delivery: TokenDelivery) => TokenDelivery = (delivery) => delivery,
): Promise<IssuedTokens> {
  const given = [
    input.code != null ? 'code' : null,
    input.recoveryCode != null ? 'recoveryCode' : null,
    input.passkeyResponse != null ? 'passkeyResponse' : null,
  ].filter((name) => name !== null);
  if (given.length !== 1) {
    throw badInput(given[1] ?? 'code', 'Give exactly one of code, recoveryCode and passkeyResponse');
  }
  const field = given[0] as string;
  const { challenges } = deps.mfa;
  const challenge = await challenges.find(input.mfaToken);
  if (!challenge) throw deadMfaToken();
  const delivery = deliverable(input.tokenDelivery ?? challenge.delivery);
  const user = await call.em.findOne(User, { id: challenge.userId });
  if (!user || !(await firstFactorHolds(call.em, user, challenge))) throw deadMfaToken();
  const factor: Factor =
    input.code != null
      ? { method: 'TOTP', code: input.code }
      : input.recoveryCode != null
        ? { method: 'RECOVERY_CODE', code: input.recoveryCode }
        : { method: 'PASSKEY', response: input.passkeyResponse, mfaTokenId: challenge.id };
  let tries = 0;
  const proven = await proveFactor(deps, call, user, factor, {
    purpose: 'sign-in',
    field,
    beforeCompare: async () => {
      const counted = await challenges.tryOnce(input.mfaToken, challenge);
      if (!counted.allowed) throw deadMfaToken();
      tries = counted.tries;
    },
    onWrong: () => challenges.failed(input.mfaToken, tries),
  });
  // The factor is spent before the token: of concurrent right answers one spends it, and the token goes with it.
  const spend = await transactional(call.em, (tx) => proven.spend(tx));
  if (spend !== 'spent') {
    await challenges.failed(input.mfaToken, tries);
    await refuseUnspent(deps, call, user.id, proven.method, 'sign-in', spend, field);
  }
  if (!(await challenges.spend(input.mfaToken, challenge))) throw deadMfaToken();
  const now = new Date(deps.clock.now());
  const opening = transactional(call.em, async (tx) => {
    // ACCOUNT_DISABLED (disabled since the first step) and a client disabled meanwhile are refused here.
    const session = await deps.sessions.open(tx, user, call.meta, delivery, 'existing', challenge.clientId);
    // firstFactorHolds again, under the user row's lock (open's) and after the session's INSERT (which waits for a
    // revocation of the user's sessions to commit): a password change or reset, or the provider link's removal,
    // committed since the look above revoked every session there was, not this one.
    if (!(await firstFactorHolds(tx, session.user, challenge))) throw deadMfaToken();
    // The second factor likewise: TOTP disabled (or enrolled anew), the passkey removed, the recovery codes replaced
    // since the spend above revoked every session there was, not this one. Every factor change takes the user row
    // exclusively first (user-lock.ts), so under open's shared lock this reads one that committed before it and
    // one that comes later waits, then finds this session.
    if (!(await proven.stillStands(tx))) throw new FactorRemoved();
    audit(
      tx,
      call.meta,
      { type: 'MFA_SUCCEEDED', userId: user.id, sessionId: session.row.id, detail: { method: proven.method } },
      now,
    );
    audit(tx, call.meta, { type: 'LOGIN_SUCCEEDED', userId: user.id, sessionId: session.row.id }, now);
    return session;
  });
  const opened = await opening.catch((error: unknown) => {
    if (error instanceof FactorRemoved) return refuseRemoved(deps, call, user.id, proven.method, 'sign-in', field);
    throw error;
  });
  return deps.sessions.issue(opened.user, opened.row, opened.refreshToken);
}
