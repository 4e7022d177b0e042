// What every provider client offers (an authorization URL, then a code exchanged for a verified profile), and
// how a provider's or the library's failure becomes one OAUTH_FAILED error that names no secret.
import { ClientError, ResponseBodyError } from 'openid-client';
import { normalizeEmail } from '../auth/validate.ts';
import { AuthError } from '../errors.ts';

/** Who the provider says signed in. */
export interface ProviderProfile {
  /** Stable id at the provider: GitHub's numeric id, an OIDC `sub`. */
  readonly providerUserId: string;
  /**
   * The email the provider vouches for, normalised as ours are; null when it shared none, did not say it verified
   * it, or sent one we would not accept. An unverified address is dropped here so that nothing downstream (sign-up,
   * the stored link, its display) can trust it by mistake.
   */
  readonly verifiedEmail: string | null;
  readonly displayName: string | null;
}

/** `email` as ProviderProfile.verifiedEmail: only when `verified`, and only an address we accept. */
export function verifiedEmailOf(email: unknown, verified: boolean): string | null {
  if (!verified || typeof email !== 'string') return null;
  try {
    return normalizeEmail(email);
  } catch {
    return null;
  }
}

export interface AuthorizationRequest {
  readonly redirectUri: string;
  readonly state: string;
  readonly codeChallenge: string;
  readonly nonce: string;
}

export interface CodeExchange {
  readonly redirectUri: string;
  readonly code: string;
  readonly state: string;
  readonly codeVerifier: string;
  readonly nonce: string;
}

export interface ProviderClient {
  readonly id: string;
  readonly name: string;
  authorizationUrl(request: AuthorizationRequest): Promise<URL>;
  /** Redeems the code (PKCE verifier, and for OIDC a verified ID token with this nonce) for the profile. */
  exchange(exchange: CodeExchange): Promise<ProviderProfile>;
}

/** Reports a provider failure with facts only (kind, library and OAuth error codes), never messages or bodies. */
export type FailureReporter = (facts: Readonly<Record<string, string>>) => void;

/** An API response that was not what the provider documents (our own calls, e.g. GitHub's REST API). */
export class ProviderResponseError extends Error {
  override name = 'ProviderResponseError';
  readonly status: number;
  constructor(status: number) {
    super(`unexpected response status ${status}`);
    this.status = status;
  }
}

type FailureKind = 'timeout' | 'network' | 'rejected_code' | 'refused' | 'unverifiable' | 'other';

function* causes(error: unknown): Generator<unknown> {
  for (let current = error, depth = 0; current !== undefined && depth < 8; depth++) {
    yield current;
    current = current instanceof Error ? current.cause : undefined;
  }
}

function classify(error: unknown): { kind: FailureKind; oauthError?: string; libraryCode?: string } {
  for (const cause of causes(error)) {
    if (cause instanceof Error && (cause.name === 'TimeoutError' || (cause as ClientError).code === 'OAUTH_TIMEOUT')) {
      return { kind: 'timeout' };
    }
  }
  if (error instanceof ResponseBodyError) {
    // Echoed to the client only when it looks like a registered OAuth error code, not free text.
    const oauthError = /^[a-z_]{1,64}$/.test(error.error) ? error.error : 'invalid_response';
    return { kind: oauthError === 'invalid_grant' ? 'rejected_code' : 'refused', oauthError };
  }
  if (error instanceof ProviderResponseError) return { kind: 'refused', libraryCode: `HTTP_${error.status}` };
  if (error instanceof ClientError) {
    const libraryCode = error.code ?? 'UNKNOWN';
    // A certificate or a refused connection surfaces as a fetch TypeError somewhere in the chain.
    if ([...causes(error)].some((cause) => cause instanceof TypeError)) return { kind: 'network', libraryCode };
    if (libraryCode === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || libraryCode === 'OAUTH_RESPONSE_IS_NOT_JSON') {
      return { kind: 'refused', libraryCode };
    }
    return { kind: 'unverifiable', libraryCode };
  }
  if (error instanceof TypeError) return { kind: 'network' };
  return { kind: 'other' };
}

const MESSAGES: Record<FailureKind, (name: string) => string> = {
  timeout: (name) => `${name} did not answer in time; try again later`,
  network: (name) => `Could not reach ${name}; try again later`,
  rejected_code: (name) => `${name} did not accept the sign-in (it may have expired or been used already); start again`,
  refused: (name) => `${name} refused the sign-in request`,
  unverifiable: (name) => `The answer from ${name} could not be verified; start again`,
  other: (name) => `Signing in with ${name} failed`,
};

/** Maps any failure of a provider call to OAUTH_FAILED; an AuthError raised on purpose passes unchanged. */
export function providerFailure(name: string, error: unknown, report: FailureReporter): AuthError {
  if (error instanceof AuthError) return error;
  const { kind, oauthError, libraryCode } = classify(error);
  report({
    provider: name,
    kind,
    ...(oauthError ? { oauthError } : {}),
    ...(libraryCode ? { libraryCode } : {}),
    errorName: error instanceof Error ? error.name : typeof error,
  });
  const message = MESSAGES[kind](name);
  return new AuthError('OAUTH_FAILED', oauthError && kind === 'refused' ? `${message} (${oauthError})` : message);
}
