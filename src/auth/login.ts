// login: email and password to a new session. Unknown email and wrong password look and take the same.
import { ForeignKeyConstraintViolationException } from '@mikro-orm/core';
import { audit, auditEvent, type RequestMeta } from '../audit/audit.ts';
import type { Call } from '../call.ts';
import type { Clock } from '../clock.ts';
import type { Em } from '../db/orm.ts';
import { insertAuditEvent } from '../db/session-opening.ts';
import { transactional } from '../db/transaction.ts';
import { findUserByEmail } from '../db/user-reads.ts';
import { AuthError } from '../errors.ts';
import { withAttempt } from '../limits/attempts.ts';
import type { Lockout } from '../limits/login-throttle.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import { passwordStamp } from '../mfa/challenges.ts';
import type { MfaKit } from '../mfa/factors.ts';
import type { PasskeyFactor } from '../mfa/passkey-factor.ts';
import { requireSecondFactor } from '../mfa/sign-in-step.ts';
import type { IssuedTokens, Sessions, TokenDelivery } from '../sessions/sessions.ts';
import type { PasswordHasher } from './passwords.ts';
import { normalizeEmail, validatePassword } from './validate.ts';

/** Rolls back a sign-in whose password was changed between its check and the session. */
class PasswordReplaced extends Error {}

export interface LoginInput {
  readonly email: string;
  readonly password: string;
  /** BODY (default) or COOKIE: where the new session's refresh tokens travel, for its whole life. */
  readonly tokenDelivery?: TokenDelivery | null;
  /** The client the new session is for (default `default`); BAD_USER_INPUT (field clientId) when unknown or disabled. */
  readonly clientId?: string | null;
}

export interface LoginDeps {
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  readonly clock: Clock;
  readonly limits: Pick<RateLimits, 'login'>;
  /** The second factor: an account with MFA on gets MFA_REQUIRED and an mfaToken instead of a session. */
  readonly mfa: MfaKit;
  readonly passkeyFactor?: PasskeyFactor;
}

export async function login(deps: LoginDeps, call: Call, input: LoginInput): Promise<IssuedTokens> {
  const { em, meta } = call;
  // Before the password is even looked at: a wrong clientId costs no guess from the throttle, counts no failed
  // login, and says nothing about whether the password was right.
  const client = deps.sessions.clients.forSignIn(input.clientId);
  const email = normalizeEmail(input.email);
  const password = validatePassword(input.password);
  // The guess is reserved before the account is even looked up: a refused one costs no query and no bcrypt, and
  // concurrent guesses get no more comparisons than the limit. A lookup that fails (the database down) gives it back.
  const { user, verdict } = await withAttempt(deps.limits.login.reserve(email, meta.ipAddress), async (attempt) => {
    const user = await findUserByEmail(em, email);
    return { user, verdict: await attempt.compare(() => deps.hasher.verify(password, user?.passwordHash)) };
  });
  const now = new Date(deps.clock.now());
  // (No account never matches: the hasher compares against a dummy hash then.)
  if (!verdict.matched || !user) {
    audit(
      em,
      meta,
      {
        type: 'LOGIN_FAILED',
        userId: user?.id ?? null,
        detail: { reason: user ? (user.passwordHash ? 'WRONG_PASSWORD' : 'NO_PASSWORD') : 'UNKNOWN_EMAIL' },
      },
      now,
    );
    auditLockouts(em, meta, verdict.matched ? [] : verdict.failure, user?.id ?? null, now);
    await em.flush();
    throw new AuthError('INVALID_CREDENTIALS', 'The email or password is incorrect');
  }
  // The password was right; with MFA on, that earns an mfaToken for verifyMfa, not a session.
  const binding = {
    clientId: client.id,
    delivery: input.tokenDelivery ?? 'BODY',
    firstFactor: { kind: 'password', stamp: passwordStamp(user.passwordHash) },
  } as const;
  await requireSecondFactor(deps, call, user, binding);
  let opened: Awaited<ReturnType<typeof deps.sessions.open>>;
  try {
    opened = await transactional(em, async (tx) => {
      const session = await deps.sessions.open(tx, user, meta, input.tokenDelivery ?? 'BODY', 'existing', client.id);
      // The password was checked before this transaction; a change or reset committed since revoked every session
      // there was (not this one, not yet there). Under the user row's lock (open's), which both take, it must still
      // be the password that was checked.
      if (session.user.passwordHash !== user.passwordHash) throw new PasswordReplaced();
      // Again under the user row's lock (open's), which every MFA change takes exclusively before revoking the
      // user's sessions: MFA turned on since the look above finds this session not yet there to revoke.
      await requireSecondFactor(deps, { ...call, em: tx }, user, binding);
      await insertAuditEvent(
        tx,
        auditEvent(meta, { type: 'LOGIN_SUCCEEDED', userId: user.id, sessionId: session.row.id }, now),
      );
      return session;
    });
  } catch (error) {
    // Told only after the right password, so it reveals nothing to whoever does not have it.
    if (error instanceof AuthError && error.code === 'ACCOUNT_DISABLED') {
      audit(em, meta, { type: 'LOGIN_FAILED', userId: user.id, detail: { reason: 'ACCOUNT_DISABLED' } }, now);
      await em.flush();
      throw error;
    }
    if (error instanceof PasswordReplaced) {
      audit(em, meta, { type: 'LOGIN_FAILED', userId: user.id, detail: { reason: 'WRONG_PASSWORD' } }, now);
      await em.flush();
      throw new AuthError('INVALID_CREDENTIALS', 'The email or password is incorrect');
    }
    // The account was deleted between the password check and the new session: as if it never existed.
    if (error instanceof ForeignKeyConstraintViolationException) {
      throw new AuthError('INVALID_CREDENTIALS', 'The email or password is incorrect');
    }
    throw error;
  }
  return deps.sessions.issue(opened.user, opened.row, opened.refreshToken);
}

/** One LOCKOUT event per lock a failed password check caused; an account's names its user when there is one. */
export function auditLockouts(
  em: Em,
  meta: RequestMeta,
  lockouts: readonly Lockout[],
  userId: string | null,
  at: Date,
) {
  for (const { scope, retryAfter, count } of lockouts) {
    audit(
      em,
      meta,
      { type: 'LOCKOUT', userId: scope === 'account' ? userId : null, detail: { scope, retryAfter, lockouts: count } },
      at,
    );
  }
}

/**
 * Whether `password` obeys the rules every stored password was set under (validatePassword). Any other input can
 * only be wrong, and must not reach bcrypt, which reads 72 bytes and stops at NUL: a prefix would match.
 */
export function couldBeStored(password: string): boolean {
  try {
    validatePassword(password);
    return true;
  } catch {
    return false;
  }
}
