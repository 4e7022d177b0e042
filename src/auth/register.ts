// register: a new password account and its first session.
import { randomUUID } from 'node:crypto';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { audit } from '../audit/audit.ts';
import type { Call } from '../call.ts';
import type { Clock } from '../clock.ts';
import { User } from '../db/entities.ts';
import { transactional } from '../db/transaction.ts';
import { AuthError } from '../errors.ts';
import { enforce, ipKey, type RateLimits } from '../limits/rate-limits.ts';
import type { IssuedTokens, Sessions, TokenDelivery } from '../sessions/sessions.ts';
import type { PasswordHasher } from './passwords.ts';
import { normalizeDisplayName, normalizeEmail, validatePassword } from './validate.ts';

export interface RegisterInput {
  readonly email: string;
  readonly password: string;
  readonly displayName?: string | null;
  /** BODY (default) or COOKIE: where the new session's refresh tokens travel, for its whole life. */
  readonly tokenDelivery?: TokenDelivery | null;
  /** The client the new session is for (default `default`); BAD_USER_INPUT (field clientId) when unknown or disabled. */
  readonly clientId?: string | null;
}

export interface RegisterDeps {
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  readonly clock: Clock;
  readonly limits: Pick<RateLimits, 'register'>;
}

const emailTaken = () => new AuthError('EMAIL_TAKEN', 'An account with this email already exists', { field: 'email' });

export async function register(deps: RegisterDeps, call: Call, input: RegisterInput): Promise<IssuedTokens> {
  const { em, meta } = call;
  // Before anything else: an unusable client costs no throttle allowance and learns nothing about the email.
  const client = deps.sessions.clients.forSignIn(input.clientId);
  const email = normalizeEmail(input.email);
  const password = validatePassword(input.password);
  const displayName = normalizeDisplayName(input.displayName);
  // Counted per client IP whatever the outcome: EMAIL_TAKEN answers must not be free to collect.
  await enforce(deps.limits.register, ipKey(meta.ipAddress));
  if ((await em.count(User, { email })) > 0) throw emailTaken();
  const passwordHash = await deps.hasher.hash(password);
  const now = new Date(deps.clock.now());
  try {
    const { user, row, refreshToken } = await transactional(em, async (tx) => {
      const user = tx.create(User, {
        id: randomUUID(),
        email,
        passwordHash,
        emailVerified: false,
        displayName,
        roles: 'USER',
        createdAt: now,
        updatedAt: now,
      });
      const opened = await deps.sessions.open(tx, user, meta, input.tokenDelivery ?? 'BODY', 'created', client.id);
      audit(tx, meta, { type: 'USER_REGISTERED', userId: user.id, sessionId: opened.row.id }, now);
      return opened;
    });
    return deps.sessions.issue(user, row, refreshToken);
  } catch (error) {
    // Two registrations of one email racing past the check above: the unique index decides.
    if (error instanceof UniqueConstraintViolationException) throw emailTaken();
    throw error;
  }
}
