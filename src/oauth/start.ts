// startOAuth: checks the redirect URI, stores state with a PKCE verifier and nonce, returns the provider's URL.
import { calculatePKCECodeChallenge, randomNonce, randomPKCECodeVerifier, randomState } from 'openid-client';
import type { Call } from '../call.ts';
import { badInput } from '../errors.ts';
import { enforce, ipKey, type RateLimits } from '../limits/rate-limits.ts';
import type { OAuth } from './oauth.ts';

export interface OAuthStart {
  readonly authorizationUrl: string;
  readonly state: string;
}

export interface StartOAuthDeps {
  readonly oauth: OAuth;
  readonly limits: Pick<RateLimits, 'oauthStart'>;
}

/**
 * Starts a sign-in, or for a signed-in caller a link of a provider account to them. RATE_LIMITED past
 * RATE_LIMIT_OAUTH_START_IP per client IP (each start stores state).
 */
export async function startOAuth(
  deps: StartOAuthDeps,
  call: Call,
  input: { readonly provider: string; readonly redirectUri: string },
): Promise<OAuthStart> {
  const { oauth } = deps;
  await enforce(deps.limits.oauthStart, ipKey(call.meta.ipAddress));
  const linkUserId = call.caller?.sub ?? null;
  const client = oauth.providers.get(input.provider);
  if (!oauth.redirectUris.has(input.redirectUri)) {
    throw badInput('redirectUri', 'This redirect URI is not allowed (OAUTH_REDIRECT_URIS)');
  }
  const state = randomState();
  const nonce = randomNonce();
  const codeVerifier = randomPKCECodeVerifier();
  const url = await client.authorizationUrl({
    redirectUri: input.redirectUri,
    state,
    nonce,
    codeChallenge: await calculatePKCECodeChallenge(codeVerifier),
  });
  await oauth.states.save(state, {
    provider: client.id,
    redirectUri: input.redirectUri,
    codeVerifier,
    nonce,
    linkUserId,
  });
  return { authorizationUrl: url.href, state };
}
