// refresh: spends a refresh token for a new token pair (the rotation rules are Sessions.refresh's).
import type { Call } from '../call.ts';
import type { IssuedTokens, Sessions } from './sessions.ts';

export interface RefreshDeps {
  readonly sessions: Sessions;
}

/** Rotates `refreshToken`: UNAUTHENTICATED with a refresh reason when it is not the live token of a live session. */
export function refresh(
  deps: RefreshDeps,
  call: Call,
  { refreshToken }: { refreshToken: string },
): Promise<IssuedTokens> {
  return deps.sessions.refresh(call.em, refreshToken, call.meta);
}
