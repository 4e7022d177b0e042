// requestPasswordReset mails a code to an account's address (always answering true, in about the same time
// for unknown addresses); resetPassword spends it, sets the password, verifies the email and ends every session.
import { audit } from '../audit/audit.ts';
import { normalizeEmail, validatePassword } from '../auth/validate.ts';
import type { Call } from '../call.ts';
import { User } from '../db/entities.ts';
import { transactional } from '../db/transaction.ts';
import { withAttempt } from '../limits/attempts.ts';
import { passwordResetMail } from '../mail/templates.ts';
import { removeUnverifiedLinks } from '../oauth/unverified-links.ts';
import { invalidCode } from './codes.ts';
import type { AccountDeps } from './deps.ts';

export interface ResetPasswordInput {
  readonly email: string;
  readonly code: string;
  readonly newPassword: string;
}

/**
 * Always true. A known address within its limit gets a new code (replacing any earlier one) by mail, sent after
 * the answer so that SMTP's latency does not tell known addresses from unknown ones; an unknown address, or one
 * over its limit, costs the same store and database work and gets nothing.
 */
export async function requestPasswordReset(deps: AccountDeps, call: Call, input: { email: string }): Promise<true> {
  const { em, meta } = call;
  const email = normalizeEmail(input.email);
  const user = await em.findOne(User, { email });
  // Counted per address whether or not it has an account: the same work either way.
  const limit = await deps.limits.reset.consume(email);
  let code: string | null = null;
  if (user && limit.allowed) code = await deps.codes.issue('password-reset', user.id);
  else await deps.codes.decoy();
  const outcome = !user ? 'UNKNOWN_EMAIL' : limit.allowed ? 'SENT' : 'RATE_LIMITED';
  audit(
    em,
    meta,
    { type: 'PASSWORD_RESET_REQUESTED', userId: user?.id ?? null, detail: { outcome } },
    new Date(deps.clock.now()),
  );
  await em.flush();
  if (user && code) {
    // The answer is true whatever happens to the mail (it must not tell known addresses from unknown ones); a
    // failure is logged with its cause and counted by the mailer (mail/reporting.ts).
    deps.mailer.send(passwordResetMail(user.email, code, deps.mail)).catch(() => {});
  }
  return true;
}

/**
 * Spends the reset code of the account with `email`, sets the new password, marks the email verified and
 * revokes every session of the account (reason PASSWORD_RESET), published after commit. INVALID_CODE for a
 * wrong, expired, spent or dead code, and for an unknown address.
 */
export async function resetPassword(deps: AccountDeps, call: Call, input: ResetPasswordInput): Promise<true> {
  const { em, meta } = call;
  const email = normalizeEmail(input.email);
  const newPassword = validatePassword(input.newPassword, 'newPassword');
  // Guesses are limited per address, whether or not it has an account, and reserved before the lookup and the
  // comparison: concurrent guesses get no more comparisons than the limit. A lookup that fails gives it back.
  let reason: string = 'UNKNOWN_EMAIL';
  const { user, verdict } = await withAttempt(deps.limits.codeAttempts.reserve(email), async (attempt) => {
    const user = await em.findOne(User, { email });
    const verdict = await attempt.compare(async () => {
      if (!user) return false;
      const rejection = await deps.codes.consume('password-reset', user.id, input.code);
      if (rejection) reason = rejection;
      return rejection === null;
    });
    return { user, verdict };
  });
  const now = new Date(deps.clock.now());
  if (!verdict.matched || !user) {
    audit(em, meta, { type: 'PASSWORD_RESET_FAILED', userId: user?.id ?? null, detail: { reason } }, now);
    await em.flush();
    throw invalidCode();
  }
  const passwordHash = await deps.hasher.hash(newPassword);
  const revocation = await transactional(em, async (tx) => {
    // First, before the user changes: it takes the user row's lock and reads whether the email was unproven.
    await removeUnverifiedLinks(tx, user.id, meta, now);
    user.passwordHash = passwordHash;
    // The code reached this address, which proves it as well as a verification code would.
    user.emailVerified = true;
    user.updatedAt = now;
    audit(tx, meta, { type: 'PASSWORD_RESET', userId: user.id }, now);
    return deps.sessions.revokeIn(tx, { userId: user.id, sessionIds: 'all', reason: 'PASSWORD_RESET', meta });
  });
  await deps.sessions.published(revocation);
  await deps.codes.discard('email-verification', user.id);
  // Whoever holds the mailbox is the account holder: a lockout that guessers caused must not keep them out.
  await deps.limits.login.clear(user.email);
  return true;
}
