// startOAuth: checks the client and the redirect URI, stores state with them, a PKCE verifier and a nonce, and
// returns the provider's URL.
import { calculatePKCECodeChallenge, randomNonce, randomPKCECodeVerifier, randomState } from 'openid-client';
import type { Call } from '../call.ts';
import type { ClientRegistry } from '../clients/registry.ts';
import { badInput } from '../errors.ts';
import { enforce, ipKey, type RateLimits } from '../limits/rate-limits.ts';
import { type OAuth, redirectUriAllowed } from './oauth.ts';

export interface OAuthStart {
  readonly authorizationUrl: string;
  readonly state: string;
}

export interface StartOAuthDeps {
  readonly oauth: OAuth;
  readonly clients: ClientRegistry;
  readonly limits: Pick<RateLimits, 'oauthStart'>;
}

/**
 * Starts a sign-in for the client `clientId` (default `default`), or for a signed-in caller a link of a provider
 * account to them. The redirect URI must be one of OAUTH_REDIRECT_URIS or of the client's redirectUris.
 * BAD_USER_INPUT (field clientId) for an unknown or disabled client; RATE_LIMITED past RATE_LIMIT_OAUTH_START_IP
 * per client IP (each start stores state).
 */
export async function startOAuth(
  deps: StartOAuthDeps,
  call: Call,
  input: { readonly provider: string; readonly redirectUri: string; readonly clientId?: string | null },
): Promise<OAuthStart> {
  const { oauth } = deps;
  const signInClient = deps.clients.forSignIn(input.clientId);
  await enforce(deps.limits.oauthStart, ipKey(call.meta.ipAddress));
  const linkUserId = call.caller?.sub ?? null;
  const client = oauth.providers.get(input.provider);
  if (!redirectUriAllowed(oauth, signInClient, input.redirectUri)) {
    throw badInput(
      'redirectUri',
      "This redirect URI is not allowed (OAUTH_REDIRECT_URIS or the client's redirectUris)",
    );
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
    clientId: signInClient.id,
    redirectUri: input.redirectUri,
    codeVerifier,
    nonce,
    linkUserId,
  });
  return { authorizationUrl: url.href, state };
}
