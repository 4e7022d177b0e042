// The one error family of the package: every refusal is a TokenVerificationError with code UNAUTHENTICATED and
// one of the contract's reasons (API.md "Reasons"), so services map it to a GraphQL or HTTP answer without parsing.

/** Why `verify` refused a token: the reasons of graphql-auth-server's contract that a resource server can meet. */
export type VerificationReason =
  | 'INVALID_TOKEN'
  | 'TOKEN_EXPIRED'
  | 'SESSION_REVOKED'
  | 'CLIENT_DISABLED'
  | 'REVOCATION_FEED_STALE';

/** Every {@link VerificationReason}, e.g. to pre-fill a metrics label set. */
export const VERIFICATION_REASONS: readonly VerificationReason[] = Object.freeze([
  'INVALID_TOKEN',
  'TOKEN_EXPIRED',
  'SESSION_REVOKED',
  'CLIENT_DISABLED',
  'REVOCATION_FEED_STALE',
]);

const MESSAGES: Record<VerificationReason, string> = {
  INVALID_TOKEN: 'The access token is invalid',
  TOKEN_EXPIRED: 'The access token has expired',
  SESSION_REVOKED: "The access token's session was revoked",
  CLIENT_DISABLED: "The access token's client is disabled or its tokens were revoked",
  REVOCATION_FEED_STALE: 'Revocations are not known to be current: the revocation feed is unavailable',
};

/**
 * A refused token. `code` is always `'UNAUTHENTICATED'` (the GraphQL `extensions.code` to answer with) and
 * `reason` says why (`extensions.reason`). The message never contains the token.
 */
export class TokenVerificationError extends Error {
  override name = 'TokenVerificationError';
  readonly code = 'UNAUTHENTICATED' as const;
  readonly reason: VerificationReason;

  constructor(reason: VerificationReason, options?: { cause?: unknown }) {
    super(MESSAGES[reason], options);
    this.reason = reason;
  }
}
