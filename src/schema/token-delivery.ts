// tokenDelivery (BODY or COOKIE) on every sign-in input, and the one way an AuthPayload leaves a resolver: a
// cookie-bound session's refresh token goes into the HttpOnly cookie and never into the body.
import { AuthError, badInput, unauthenticated } from '../errors.ts';
import { refresh } from '../sessions/refresh.ts';
import type { IssuedTokens, TokenDelivery } from '../sessions/sessions.ts';
import { builder } from './builder.ts';
import type { Context } from './context.ts';

export const TokenDeliveryEnum = builder.enumType('TokenDelivery', {
  description: 'Where the refresh tokens of a new session travel, for its whole life.',
  values: {
    BODY: { description: 'In AuthPayload.refreshToken, for the client to keep and send to refresh.' },
    COOKIE: {
      description:
        'Only in an HttpOnly cookie on /graphql (browsers): AuthPayload.refreshToken is null and refresh takes no argument.',
    },
  } as const,
});

/** The input field every sign-in input has. */
export const tokenDeliveryField = {
  type: TokenDeliveryEnum,
  required: false,
  defaultValue: 'BODY',
  description: 'BODY (the default) or COOKIE (an HttpOnly cookie; browsers).',
} as const;

/** The delivery a sign-in asked for; COOKIE needs an answer that can carry a cookie (not a WebSocket). */
export function deliveryOf(context: Context, asked: TokenDelivery | null | undefined): TokenDelivery {
  const delivery = asked ?? 'BODY';
  if (delivery === 'COOKIE' && !context.refreshCookie.settable) {
    throw badInput('tokenDelivery', 'COOKIE needs an HTTP request: a cookie cannot be set over a WebSocket');
  }
  return delivery;
}

/** Hands a payload to the transport: a cookie-bound session's refresh token becomes the cookie. */
export function delivered(context: Context, payload: IssuedTokens): IssuedTokens {
  if (payload.cookieBound) context.refreshCookie.set(payload.refreshToken, payload.refreshTokenExpiresAt);
  return payload;
}

/** Answers to a refresh by cookie after which the cookie is worth nothing: it is cleared. */
const DEAD_COOKIE = new Set([
  'INVALID_REFRESH_TOKEN',
  'REFRESH_TOKEN_EXPIRED',
  'REFRESH_TOKEN_REUSE',
  'SESSION_REVOKED',
]);

/**
 * `refresh`: the argument when given (never a cookie-bound session's token), else the cookie, which is read
 * only after the request's CSRF and Origin checks. A cookie refresh sets the rotated cookie, and clears it when
 * the answer says it is dead; REFRESH_TOKEN_ROTATED leaves it to the request that won the rotation.
 */
export async function refreshed(context: Context, refreshToken: string | null | undefined): Promise<IssuedTokens> {
  const { services, call } = context;
  if (refreshToken != null)
    return delivered(context, await refresh(services, call, { refreshToken, source: 'argument' }));
  try {
    const cookie = await context.refreshCookie.read();
    if (cookie === undefined) throw unauthenticated('AUTHENTICATION_REQUIRED');
    return delivered(context, await refresh(services, call, { refreshToken: cookie, source: 'cookie' }));
  } catch (error) {
    const reason = error instanceof AuthError ? error.details?.reason : undefined;
    if (typeof reason === 'string' && DEAD_COOKIE.has(reason)) context.refreshCookie.clear();
    throw error;
  }
}
