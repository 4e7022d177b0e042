// The domain's error family: every expected failure is an AuthError with a stable code from API.md.

export const ERROR_CODES = [
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'BAD_USER_INPUT',
  'INVALID_CREDENTIALS',
  'EMAIL_TAKEN',
  'INVALID_CODE',
  'OAUTH_FAILED',
  'OAUTH_ACCOUNT_IN_USE',
  'ACCOUNT_EXISTS',
  'RATE_LIMITED',
  'NOT_FOUND',
  // A mail the caller asked for (requestEmailVerification) could not be sent; trying again later may work.
  'MAIL_DELIVERY_FAILED',
  // The right password (or provider account) of an account an admin disabled: said only to whoever proved it.
  'ACCOUNT_DISABLED',
  // The first factor was right and the account has a second one: verifyMfa with extensions.mfaToken finishes.
  'MFA_REQUIRED',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** What goes into `extensions` beside the code: scalars, or (MFA_REQUIRED) a list of methods and passkey options. */
export type ErrorDetails = Readonly<
  Record<string, string | number | boolean | readonly string[] | Readonly<Record<string, unknown>>>
>;

/**
 * Why a request is UNAUTHENTICATED (`extensions.reason`): one vocabulary for the server, the client package and
 * the verifier package (API.md, "Reasons"), each with the one message the server answers with.
 */
export const UNAUTHENTICATED_REASONS = {
  AUTHENTICATION_REQUIRED: 'Authentication required',
  INVALID_TOKEN: 'The access token is invalid',
  TOKEN_EXPIRED: 'The access token has expired',
  SESSION_REVOKED: 'The session has been revoked',
  CLIENT_DISABLED: 'The client has been disabled',
  ACCOUNT_DISABLED: 'The account has been disabled',
  REFRESH_TOKEN_ROTATED: 'The refresh token was already rotated',
  REFRESH_TOKEN_REUSE: 'The refresh token was already used; the session has been revoked',
  REFRESH_TOKEN_EXPIRED: 'The refresh token has expired',
  INVALID_REFRESH_TOKEN: 'The refresh token is invalid',
  REVOCATION_FEED_STALE: 'The revocation feed has been unavailable for too long',
} as const satisfies Record<string, string>;
export type UnauthenticatedReason = keyof typeof UNAUTHENTICATED_REASONS;

export class AuthError extends Error {
  override name = 'AuthError';
  readonly code: ErrorCode;
  readonly details: ErrorDetails | undefined;

  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

export const badInput = (field: string, message: string) => new AuthError('BAD_USER_INPUT', message, { field });

/** UNAUTHENTICATED with `reason` and its message. */
export const unauthenticated = (reason: UnauthenticatedReason) =>
  new AuthError('UNAUTHENTICATED', UNAUTHENTICATED_REASONS[reason], { reason });
