// graphql-auth-verifier: verifies graphql-auth-server access tokens in any service, with live revocation from the
// server's revocation feed; a graphql-yoga/envelop plugin and a framework-free authenticate().
export type { ServiceClaims, TokenClaims, UserClaims, VerifiedClaims } from './claims.ts';
export { TokenVerificationError, VERIFICATION_REASONS, type VerificationReason } from './errors.ts';
export {
  authenticate,
  type TokenVerifierContext,
  type TokenVerifierPlugin,
  useTokenVerifier,
  type Verifies,
} from './plugin.ts';
export type { Revocation } from './revocations.ts';
export { createTokenVerifier, type TokenVerifier, type TokenVerifierOptions, type VerifierStatus } from './verifier.ts';
