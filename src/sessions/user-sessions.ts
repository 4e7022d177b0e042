// A user's sessions: listing the active ones, and the caller ending sessions of their own: logout (the current
// one), revokeSession (one by id) and revokeOtherSessions (all but the current one). Revocations are published
// to every instance after commit.
import { type Call, callerOf } from '../call.ts';
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

/** Revokes the caller's current session (reason LOGOUT). */
export async function logout(deps: UserSessionsDeps, call: Call): Promise<true> {
  const { sub, sid } = callerOf(call);
  await deps.sessions.revoke(call.em, { userId: sub, sessionIds: [sid], reason: 'LOGOUT', meta: call.meta });
  return true;
}

/** Revokes one of the caller's active sessions (REVOKED_BY_USER); NOT_FOUND for any other id. */
export async function revokeSession(deps: UserSessionsDeps, call: Call, { id }: { id: string }): Promise<true> {
  const userId = callerOf(call).sub;
  await deps.sessions.revokeOwn(call.em, { userId, sessionId: id, reason: 'REVOKED_BY_USER', meta: call.meta });
  return true;
}

/** Revokes every active session of the caller's but the current one (REVOKED_BY_USER); returns how many. */
export function revokeOtherSessions(deps: UserSessionsDeps, call: Call): Promise<number> {
  const { sub, sid } = callerOf(call);
  return deps.sessions.revoke(call.em, {
    userId: sub,
    sessionIds: 'all',
    reason: 'REVOKED_BY_USER',
    meta: call.meta,
    except: sid,
  });
}
