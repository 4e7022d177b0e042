// GitHub: OAuth 2 (no OpenID Connect) through openid-client with known endpoints and PKCE, then the REST API's
// /user and /user/emails for who signed in. Only the primary email, and only when GitHub has verified it, is used.
import * as client from 'openid-client';
import type { OAuthProviderConfig } from '../config.ts';
import {
  type FailureReporter,
  type ProviderClient,
  type ProviderProfile,
  ProviderResponseError,
  providerFailure,
  verifiedEmailOf,
} from './provider-client.ts';

type GitHubConfig = Extract<OAuthProviderConfig, { kind: 'github' }>;

const SCOPE = 'read:user user:email';

interface GitHubUser {
  id: number | string;
  login: string;
  name?: string | null;
}

interface GitHubEmail {
  email: string;
  primary: boolean;
  verified: boolean;
}

export function createGitHubClient(provider: GitHubConfig, timeoutMs: number, report: FailureReporter): ProviderClient {
  const config = new client.Configuration(
    { issuer: 'https://github.com', authorization_endpoint: provider.authorizeUrl, token_endpoint: provider.tokenUrl },
    provider.clientId,
    provider.clientSecret,
    client.ClientSecretPost(provider.clientSecret),
  );
  config.timeout = timeoutMs / 1000;
  // The configuration only lets http:// through on loopback outside production (a local stand-in for GitHub).
  if ([provider.authorizeUrl, provider.tokenUrl].some((url) => url.startsWith('http:'))) {
    client.allowInsecureRequests(config);
  }
  // GitHub answers token errors (a bad or spent code) with 200 and {"error": …}; give the library the 400 that
  // RFC 6749 specifies so it reports them as the OAuth errors they are. (Transport only: the protocol stays its.)
  config[client.customFetch] = async (url, options) => {
    const response = await fetch(url, options as RequestInit);
    if (response.status !== 200 || url !== provider.tokenUrl) return response;
    const body = (await response
      .clone()
      .json()
      .catch(() => undefined)) as { error?: unknown } | undefined;
    if (typeof body?.error !== 'string') return response;
    // bad_verification_code is GitHub's name for invalid_grant: a wrong, expired or spent code.
    return Response.json(
      { ...body, error: body.error === 'bad_verification_code' ? 'invalid_grant' : body.error },
      { status: 400 },
    );
  };

  const api = async <T>(path: string, accessToken: string): Promise<T> => {
    const response = await fetch(`${provider.apiUrl}${path}`, {
      headers: {
        accept: 'application/vnd.github+json',
        authorization: `Bearer ${accessToken}`,
        'user-agent': 'graphql-auth-server',
        'x-github-api-version': '2022-11-28',
      },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!response.ok) throw new ProviderResponseError(response.status);
    return (await response.json()) as T;
  };

  const fail = (error: unknown) => providerFailure(provider.name, error, report);

  return {
    id: provider.id,
    name: provider.name,
    async authorizationUrl({ redirectUri, state, codeChallenge }) {
      try {
        return client.buildAuthorizationUrl(config, {
          redirect_uri: redirectUri,
          scope: SCOPE,
          state,
          code_challenge: codeChallenge,
          code_challenge_method: 'S256',
        });
      } catch (error) {
        throw fail(error);
      }
    },
    async exchange({ redirectUri, code, state, codeVerifier }): Promise<ProviderProfile> {
      try {
        const callback = new URL(redirectUri);
        callback.searchParams.set('code', code);
        callback.searchParams.set('state', state);
        const tokens = await client.authorizationCodeGrant(config, callback, {
          pkceCodeVerifier: codeVerifier,
          expectedState: state,
        });
        const [user, emails] = await Promise.all([
          api<GitHubUser>('/user', tokens.access_token),
          api<GitHubEmail[]>('/user/emails', tokens.access_token),
        ]);
        if ((typeof user.id !== 'number' && typeof user.id !== 'string') || !Array.isArray(emails)) {
          throw new client.ClientError('unexpected GitHub API response');
        }
        // Strictly `true`: a string "false" is truthy. The primary address only, even when another is verified: it
        // is the one GitHub itself treats as the account's.
        const primary = emails.find((entry) => entry?.primary === true);
        return {
          providerUserId: String(user.id),
          verifiedEmail: verifiedEmailOf(primary?.email, primary?.verified === true),
          displayName: user.name?.trim() || user.login || null,
        };
      } catch (error) {
        throw fail(error);
      }
    },
  };
}
