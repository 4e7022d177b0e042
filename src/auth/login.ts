// login: email and password to a new session. Unknown email and wrong password look and take the same.
import { ForeignKeyConstraintViolationException } from '@mikro-orm/core';
import { audit, type RequestMeta } from '../audit/audit.ts';
import type { Clock } from '../clock.ts';
import { User } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { AuthError } from '../errors.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import type { IssuedTokens, Sessions } from '../sessions/sessions.ts';
import type { PasswordHasher } from './passwords.ts';
import { normalizeEmail, validatePassword } from './validate.ts';

export interface LoginInput {
  readonly email: string;
  readonly password: string;
}

export interface LoginDeps {
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  readonly clock: Clock;
  readonly limits: Pick<RateLimits, 'login'>;
}

export async function login(deps: LoginDeps, em: Em, input: LoginInput, meta: RequestMeta): Promise<IssuedTokens> {
  const email = normalizeEmail(input.email);
  const password = validatePassword(input.password);
  // A locked account or IP is refused before the password is looked at: no oracle, no bcrypt work.
  await deps.limits.login.check(email, meta.ipAddress);
  const user = await em.findOne(User, { email });
  const valid = await deps.hasher.verify(password, user?.passwordHash);
  const now = new Date(deps.clock.now());
  if (!user || !valid) {
    const lockouts = await deps.limits.login.failed(email, meta.ipAddress);
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
    for (const { scope, retryAfter, count } of lockouts) {
      const userId = scope === 'account' ? (user?.id ?? null) : null;
      audit(em, meta, { type: 'LOCKOUT', userId, detail: { scope, retryAfter, lockouts: count } }, now);
    }
    await em.flush();
    throw new AuthError('INVALID_CREDENTIALS', 'The email or password is incorrect');
  }
  await deps.limits.login.succeeded(email);
  let opened: ReturnType<typeof deps.sessions.open>;
  try {
    opened = await em.transactional(async (tx) => {
      const session = deps.sessions.open(tx, user, meta);
      audit(tx, meta, { type: 'LOGIN_SUCCEEDED', userId: user.id, sessionId: session.row.id }, now);
      return session;
    });
  } catch (error) {
    // The account was deleted between the password check and the new session: as if it never existed.
    if (error instanceof ForeignKeyConstraintViolationException) {
      throw new AuthError('INVALID_CREDENTIALS', 'The email or password is incorrect');
    }
    throw error;
  }
  return deps.sessions.issue(user, opened.row, opened.refreshToken);
}
