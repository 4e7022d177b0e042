// requestEmailVerification mails the account holder a code; verifyEmail spends it and marks the email verified.
import { audit } from '../audit/audit.ts';
import { type Call, callerAccount } from '../call.ts';
import type { UserRow } from '../db/entities.ts';
import { transactional } from '../db/transaction.ts';
import { AuthError } from '../errors.ts';
import { withAttempt } from '../limits/attempts.ts';
import { rateLimited } from '../limits/limiters.ts';
import { MailError } from '../mail/mailer.ts';
import { verificationMail } from '../mail/templates.ts';
import { removeUnverifiedLinks } from '../oauth/unverified-links.ts';
import { holdCallerSession } from '../sessions/caller-session.ts';
import { type CodeRejection, invalidCode } from './codes.ts';
import type { AccountDeps } from './deps.ts';

/**
 * Mails a new verification code to the caller's address (replacing any earlier one) and returns true; returns
 * false, sending nothing, when the address is already verified. RATE_LIMITED past the per-account limit.
 */
export async function requestEmailVerification(deps: AccountDeps, call: Call): Promise<boolean> {
  const { em, meta } = call;
  const user = await callerAccount(call);
  const userId = user.id;
  if (user.emailVerified) return false;
  const limit = await deps.limits.verification.consume(user.id);
  const now = new Date(deps.clock.now());
  if (!limit.allowed) {
    audit(em, meta, { type: 'EMAIL_VERIFICATION_REQUESTED', userId, detail: { outcome: 'RATE_LIMITED' } }, now);
    await em.flush();
    throw rateLimited(limit.retryAfterMs);
  }
  const code = await deps.codes.issue('email-verification', user.id);
  try {
    await deps.mailer.send(verificationMail(user.email, code, deps.mail));
  } catch (error) {
    if (!(error instanceof MailError)) throw error;
    // Logged and counted by the mailer. The caller asked for this mail and waits for it: say it is not coming.
    // The request still counts against the limit, so a failing mail server is not hammered through us.
    audit(em, meta, { type: 'EMAIL_VERIFICATION_REQUESTED', userId, detail: { outcome: 'MAIL_FAILED' } }, now);
    await em.flush();
    throw new AuthError('MAIL_DELIVERY_FAILED', 'The verification mail could not be sent. Try again later.');
  }
  audit(em, meta, { type: 'EMAIL_VERIFICATION_REQUESTED', userId, detail: { outcome: 'SENT' } }, now);
  await em.flush();
  return true;
}

/**
 * Spends the caller's pending verification code and marks the email verified; INVALID_CODE otherwise.
 * UNAUTHENTICATED SESSION_REVOKED when the caller's session was revoked while the request ran.
 */
export async function verifyEmail(deps: AccountDeps, call: Call, { code }: { code: string }): Promise<UserRow> {
  const { em, meta } = call;
  const user = await callerAccount(call);
  const userId = user.id;
  // Guesses are reserved before the comparison, per address like a reset code's (they share one budget).
  let rejection: CodeRejection | null = null;
  const verdict = await withAttempt(deps.limits.codeAttempts.reserve(user.email), (attempt) =>
    attempt.compare(async () => {
      rejection = await deps.codes.consume('email-verification', user.id, code);
      return rejection === null;
    }),
  );
  const now = new Date(deps.clock.now());
  if (!verdict.matched) {
    audit(em, meta, { type: 'EMAIL_VERIFICATION_FAILED', userId, detail: { reason: rejection } }, now);
    await em.flush();
    throw invalidCode();
  }
  await transactional(em, async (tx) => {
    // First, before the user changes: it takes the user row's lock and reads whether the email was unproven.
    await removeUnverifiedLinks(tx, user.id, meta, now);
    // Then the caller's session (after the user row, the lock order of every change): a session revoked while
    // this ran proves nothing more (the code it spent stays spent; the owner asks for another).
    await holdCallerSession(tx, call.caller);
    user.emailVerified = true;
    user.updatedAt = now;
    audit(tx, meta, { type: 'EMAIL_VERIFIED', userId }, now);
  });
  // Proving the mailbox ends a lockout of the account's sign-in, as a password reset does.
  await deps.limits.login.clear(user.email);
  return user;
}
