// refresh: spends a refresh token for a new token pair (the rotation rules are Sessions.refresh's).
import type { Call } from '../call.ts';
import type { IssuedTokens, RefreshTokenSource, Sessions } from './sessions.ts';

export interface RefreshDeps {
  readonly sessions: Sessions;
}

export interface RefreshInput {
  readonly refreshToken: string;
  /** `cookie` when the transport read it from the refresh cookie (a cookie-bound session's only way). */
  readonly source: RefreshTokenSource;
}

/** Rotates `refreshToken`: UNAUTHENTICATED with a refresh reason when it is not the live token of a live session. */
export function refresh(deps: RefreshDeps, call: Call, { refreshToken, source }: RefreshInput): Promise<IssuedTokens> {
  return deps.sessions.refresh(call, refreshToken, source);
}
