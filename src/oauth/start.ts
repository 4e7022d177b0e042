// startOAuth: checks the redirect URI, stores state with a PKCE verifier and nonce, returns the provider's URL.
import { calculatePKCECodeChallenge, randomNonce, randomPKCECodeVerifier, randomState } from 'openid-client';
import { badInput } from '../errors.ts';
import type { OAuth } from './oauth.ts';

export interface OAuthStart {
  readonly authorizationUrl: string;
  readonly state: string;
}

/** Starts a sign-in, or with `linkUserId` a link of a provider account to that signed-in user. */
export async function startOAuth(
  oauth: OAuth,
  input: { readonly provider: string; readonly redirectUri: string },
  linkUserId: string | null,
): Promise<OAuthStart> {
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
