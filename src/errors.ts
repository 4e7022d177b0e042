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
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export type ErrorDetails = Readonly<Record<string, string | number | boolean>>;

export class AuthError extends Error {
  override name = 'AuthError';
  readonly code: ErrorCode;
  readonly details: ErrorDetails | undefined;

  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(message);
    this.code = code;
    this.details = details;
  }

  /** graphql-js copies an original error's `extensions` onto the located GraphQLError it wraps it in. */
  get extensions(): Readonly<Record<string, unknown>> {
    return { code: this.code, ...this.details };
  }
}

export const badInput = (field: string, message: string) => new AuthError('BAD_USER_INPUT', message, { field });

export const unauthenticated = (message: string, reason?: string) =>
  new AuthError('UNAUTHENTICATED', message, reason ? { reason } : undefined);
