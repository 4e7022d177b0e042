// changePassword: checks the current password, sets the new one, revokes every other session and
// gives the current session a fresh refresh token, all in one transaction.

import { LockMode } from '@mikro-orm/core';
import { audit } from '../audit/audit.ts';
import { type Call, callerOf } from '../call.ts';
import type { Clock } from '../clock.ts';
import { Session, User } from '../db/entities.ts';
import { transactional } from '../db/transaction.ts';
import { AuthError, unauthenticated } from '../errors.ts';
import { withAttempt } from '../limits/attempts.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import type { IssuedTokens, Sessions } from '../sessions/sessions.ts';
import { auditLockouts, couldBeStored } from './login.ts';
import type { PasswordHasher } from './passwords.ts';
import { validatePassword } from './validate.ts';

export interface ChangePasswordInput {
  readonly currentPassword: string;
  readonly newPassword: string;
  /**
   * False when the answer cannot set the session's cookie where the browser keeps it (a WebSocket, or a request
   * sent without the cookie, whose Set-Cookie a browser ignores): a cookie-bound session is then refused before
   * anything changes, as its rotated refresh token would be lost and the cookie it holds, spent, would end the
   * session as a reuse at its next refresh.
   */
  readonly canSetCookie?: boolean;
}

export interface ChangePasswordDeps {
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  readonly clock: Clock;
  readonly limits: Pick<RateLimits, 'login'>;
}

export async function changePassword(
  deps: ChangePasswordDeps,
  call: Call,
  input: ChangePasswordInput,
): Promise<IssuedTokens> {
  const { em, meta } = call;
  const { sub, sid } = callerOf(call);
  const newPassword = validatePassword(input.newPassword, 'newPassword');
  const user = await em.findOne(User, { id: sub });
  const session = await em.findOne(Session, { id: sid, user: sub, revokedAt: null });
  if (!user || !session) throw unauthenticated('SESSION_REVOKED');
  if (session.cookieBound && input.canSetCookie === false) {
    throw new AuthError(
      'BAD_USER_INPUT',
      'This session keeps its refresh token in a cookie: change the password over HTTP with the cookie (credentials)',
    );
  }
  // Guessing the current password with a stolen access token is a failed sign-in of the account: reserved
  // before the comparison, refused while the account is locked, and counted towards its lockout.
  const current = input.currentPassword;
  const verdict = await withAttempt(deps.limits.login.reserve(user.email, meta.ipAddress), (attempt) =>
    attempt.compare(async () => couldBeStored(current) && (await deps.hasher.verify(current, user.passwordHash))),
  );
  if (!verdict.matched) {
    const at = new Date(deps.clock.now());
    audit(em, meta, { type: 'PASSWORD_CHANGE_FAILED', userId: user.id, sessionId: session.id }, at);
    auditLockouts(em, meta, verdict.failure, user.id, at);
    await em.flush();
    throw new AuthError('INVALID_CREDENTIALS', 'The current password is incorrect', { field: 'currentPassword' });
  }
  const passwordHash = await deps.hasher.hash(newPassword);
  const now = new Date(deps.clock.now());
  const { rotated, revocation } = await transactional(em, async (tx) => {
    // The session as it is now, locked (MySQL): a refresh that committed since the read above has rotated it, and
    // one still running waits for this commit and then finds its token spent (REFRESH_TOKEN_ROTATED). Rotating the
    // copy read above would issue a second token of one generation, and the refresh's would die as merely invalid.
    const current = await tx.findOne(
      Session,
      { id: session.id },
      { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true },
    );
    if (!current || current.revokedAt) throw unauthenticated('SESSION_REVOKED');
    // The current session goes on with a new refresh token (TOKEN_EXPIRED, changing nothing, if it has ended);
    // every other one ends.
    const rotated = deps.sessions.rotateInPlace(current);
    user.passwordHash = passwordHash;
    user.updatedAt = now;
    audit(tx, meta, { type: 'PASSWORD_CHANGED', userId: user.id, sessionId: session.id }, now);
    const revocation = await deps.sessions.revokeIn(tx, {
      userId: user.id,
      sessionIds: 'all',
      reason: 'PASSWORD_CHANGED',
      meta,
      except: session.id,
    });
    return { rotated, revocation };
  });
  await deps.sessions.published(revocation);
  return deps.sessions.issue(user, rotated.row, rotated.refreshToken);
}
