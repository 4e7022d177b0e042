// changePassword: checks the current password, sets the new one, revokes every other session and
// gives the current session a fresh refresh token, all in one transaction.

import { audit, type RequestMeta } from '../audit/audit.ts';
import type { Clock } from '../clock.ts';
import { Session, User } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { AuthError, unauthenticated } from '../errors.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import type { IssuedTokens, Sessions } from '../sessions/sessions.ts';
import type { PasswordHasher } from './passwords.ts';
import { validatePassword } from './validate.ts';

export interface ChangePasswordInput {
  readonly currentPassword: string;
  readonly newPassword: string;
}

export interface ChangePasswordDeps {
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  readonly clock: Clock;
  readonly limits: Pick<RateLimits, 'login'>;
}

export async function changePassword(
  deps: ChangePasswordDeps,
  em: Em,
  caller: { userId: string; sessionId: string },
  input: ChangePasswordInput,
  meta: RequestMeta,
): Promise<IssuedTokens> {
  const newPassword = validatePassword(input.newPassword, 'newPassword');
  const user = await em.findOne(User, { id: caller.userId });
  const current = await em.findOne(Session, { id: caller.sessionId, user: caller.userId, revokedAt: null });
  if (!user || !current) throw unauthenticated('The session has been revoked', 'SESSION_REVOKED');
  // Guessing the current password with a stolen access token counts against the same limits as login.
  await deps.limits.login.check(user.email, meta.ipAddress);
  if (!(await deps.hasher.verify(input.currentPassword, user.passwordHash))) {
    const lockouts = await deps.limits.login.failed(user.email, meta.ipAddress);
    const at = new Date(deps.clock.now());
    audit(em, meta, { type: 'PASSWORD_CHANGE_FAILED', userId: user.id, sessionId: current.id }, at);
    for (const { scope, retryAfter, count } of lockouts) {
      const userId = scope === 'account' ? user.id : null;
      audit(em, meta, { type: 'LOCKOUT', userId, detail: { scope, retryAfter, lockouts: count } }, at);
    }
    await em.flush();
    throw new AuthError('INVALID_CREDENTIALS', 'The current password is incorrect', { field: 'currentPassword' });
  }
  const passwordHash = await deps.hasher.hash(newPassword);
  const now = new Date(deps.clock.now());
  const { rotated, revocation } = await em.transactional(async (tx) => {
    user.passwordHash = passwordHash;
    user.updatedAt = now;
    audit(tx, meta, { type: 'PASSWORD_CHANGED', userId: user.id, sessionId: current.id }, now);
    // The current session goes on with a new refresh token; every other one ends.
    const rotated = deps.sessions.rotateInPlace(current);
    const revocation = await deps.sessions.revokeIn(tx, user.id, 'all', 'PASSWORD_CHANGED', meta, current.id);
    return { rotated, revocation };
  });
  await deps.sessions.published(revocation);
  return deps.sessions.issue(user, rotated.row, rotated.refreshToken);
}
