// What a sessionRevoked subscriber hears: every revocation of any of its user's sessions, from any instance,
// until its own session is revoked (delivered, then the end) or its access token expires (the end).
import { type Call, callerOf } from '../call.ts';
import type { Clock } from '../clock.ts';
import type { RevocationReason } from '../db/entities.ts';
import type { RevocationBus } from '../events/revocation-bus.ts';

export interface SessionRevocation {
  readonly sessionId: string;
  readonly reason: RevocationReason;
  readonly revokedAt: Date;
}

export interface RevocationEventsDeps {
  readonly bus: RevocationBus;
  readonly clock: Clock;
}

export interface RevocationListener {
  event(revocation: SessionRevocation): void;
  /** Called once, when the subscription is over. */
  end(): void;
}

/** Starts following the caller's revocations; returns how to stop (call it when the subscriber goes away). */
export function followSessionRevocations(deps: RevocationEventsDeps, call: Call, listener: RevocationListener) {
  const { sub, sid, exp } = callerOf(call);
  const expiry = setTimeout(() => listener.end(), Math.max(0, exp * 1000 - deps.clock.now()));
  const unsubscribe = deps.bus.subscribe((event) => {
    // A deleted account's session read back from the audit trail names no user: only its own session is told.
    const ours = event.userId === sub || (event.userId === null && event.sessionIds.includes(sid));
    if (!ours) return;
    const revokedAt = new Date(event.revokedAt);
    for (const sessionId of event.sessionIds) listener.event({ sessionId, reason: event.reason, revokedAt });
    if (event.sessionIds.includes(sid)) listener.end();
  });
  return () => {
    clearTimeout(expiry);
    unsubscribe();
  };
}
