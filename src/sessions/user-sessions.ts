// A user's sessions: listing the active ones, and the caller ending sessions of their own: logout (the current
// one), revokeSession (one by id) and revokeOtherSessions (all but the current one). Revocations are published
// to every instance after commit.
import { type Call, callerOf } from '../call.ts';
import { unauthenticated } from '../errors.ts';
import type { SessionInfo, Sessions } from './sessions.ts';

export interface UserSessionsDeps {
  readonly sessions: Sessions;
}

/** The active sessions of `userId` (whose access the schema checked), newest first; `current` marks the caller's. */
export function listSessions(
  deps: UserSessionsDeps,
  call: Call,
  input: { userId: string; currentSessionId: string | undefined },
): Promise<SessionInfo[]> {
  return deps.sessions.listActive(call.em, input.userId, input.currentSessionId);
}

/**
 * Revokes the caller's current session (reason LOGOUT). UNAUTHENTICATED SESSION_REVOKED when it was no longer
 * active: revoked by a request this instance has not heard of yet (an instance that stopped between its commit
 * and its PUBLISH, or a request retried on another instance after that one committed it). Answering `true` would
 * claim a revocation that this request did not make and did not publish.
 */
export async function logout(deps: UserSessionsDeps, call: Call): Promise<true> {
  const { sub, sid } = callerOf(call);
  const revoked = await deps.sessions.revoke(call.em, {
    userId: sub,
    sessionIds: [sid],
    reason: 'LOGOUT',
    meta: call.meta,
  });
  if (revoked === 0) throw unauthenticated('SESSION_REVOKED');
  return true;
}

/**
 * Revokes one of the caller's active sessions (REVOKED_BY_USER); NOT_FOUND for any other id. UNAUTHENTICATED
 * SESSION_REVOKED when the caller's own session was revoked while the request ran: a session thrown out by its
 * owner signs nobody out once that has been answered.
 */
export async function revokeSession(deps: UserSessionsDeps, call: Call, { id }: { id: string }): Promise<true> {
  const { sub, sid } = callerOf(call);
  await deps.sessions.revokeOwn(call.em, {
    userId: sub,
    sessionId: id,
    reason: 'REVOKED_BY_USER',
    meta: call.meta,
    askedBy: sid,
  });
  return true;
}

/**
 * Revokes every active session of the caller's but the current one (REVOKED_BY_USER); returns how many.
 * UNAUTHENTICATED SESSION_REVOKED, revoking none, when the current one was revoked while the request ran.
 */
export function revokeOtherSessions(deps: UserSessionsDeps, call: Call): Promise<number> {
  const { sub, sid } = callerOf(call);
  return deps.sessions.revoke(call.em, {
    userId: sub,
    sessionIds: 'all',
    reason: 'REVOKED_BY_USER',
    meta: call.meta,
    except: sid,
    askedBy: sid,
  });
}
