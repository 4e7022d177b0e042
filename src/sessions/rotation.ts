// One rotation of a session's refresh token, as data: the next generation, its token, and the sliding expiry
// capped by the session's absolute end. Refresh writes it conditionally; changePassword applies it in place.
import type { SessionRow } from '../db/entities.ts';
import { newRefreshToken, type TagKey } from './refresh-token.ts';

/** When a refresh token issued at `now` (ms) expires: `refreshTokenTtlMs` later, never past the session's end. */
export function slidingExpiry(now: number, maxExpiresAt: Date, refreshTokenTtlMs: number): Date {
  return new Date(Math.min(now + refreshTokenTtlMs, maxExpiresAt.getTime()));
}

export interface Rotation {
  /** The new refresh token, for the caller only; its hash is in `changes`. */
  readonly refreshToken: string;
  /** The session columns the rotation sets. */
  readonly changes: Pick<
    SessionRow,
    'refreshGeneration' | 'refreshTokenHash' | 'rotatedAt' | 'lastUsedAt' | 'expiresAt'
  >;
}

/**
 * The rotation of `session` at `now` (ms): generation + 1, a new token under the session's tag key (`tagKey`:
 * that key as a KeyObject the caller already made, e.g. to check the presented token).
 */
export function rotate(
  session: Pick<SessionRow, 'id' | 'refreshGeneration' | 'refreshTagKey' | 'maxExpiresAt'>,
  now: number,
  refreshTokenTtlMs: number,
  tagKey: TagKey = session.refreshTagKey,
): Rotation {
  const refreshGeneration = session.refreshGeneration + 1;
  const next = newRefreshToken(session.id, refreshGeneration, tagKey);
  const at = new Date(now);
  return {
    refreshToken: next.token,
    changes: {
      refreshGeneration,
      refreshTokenHash: next.hash,
      rotatedAt: at,
      lastUsedAt: at,
      expiresAt: slidingExpiry(now, session.maxExpiresAt, refreshTokenTtlMs),
    },
  };
}
