// What the OAuth suites share: the providers they configure (the real oidc-provider as Google and as "acme", the
// GitHub stand-in), the operations, and the browser's part of a sign-in (startOAuth, the provider, the redirect).
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { type FakeGitHub, type GitHubAccount, startFakeGitHub } from './github.ts';
import { type Gql, PAYLOAD, type Payload, uniqueEmail } from './graphql.ts';
import { type OidcAccount, startOidcProvider, type TestOidcProvider } from './oidc.ts';

export const REDIRECT = 'https://app.test/oauth/callback';
export const ACME = { clientId: 'acme-client', clientSecret: `acme-secret-${randomUUID()}` };
export const GOOGLE = { clientId: 'google-client', clientSecret: `google-secret-${randomUUID()}` };

export const START = `mutation($provider: String!, $redirectUri: String!) {
  startOAuth(provider: $provider, redirectUri: $redirectUri) { authorizationUrl state } }`;
export const LOGIN = `mutation($input: OAuthCodeInput!) { loginWithOAuth(input: $input) { ${PAYLOAD} } }`;

/** The code and state that come back on the redirect URI: the input of loginWithOAuth and linkOAuthProvider. */
export interface Callback {
  provider: string;
  code: string;
  state: string;
}

/** The environment that configures github (the stand-in), google and acme (both the test OpenID Provider). */
export const providersEnv = (oidc: TestOidcProvider, github: FakeGitHub) => ({
  ...github.env,
  OAUTH_GOOGLE_CLIENT_ID: GOOGLE.clientId,
  OAUTH_GOOGLE_CLIENT_SECRET: GOOGLE.clientSecret,
  OAUTH_GOOGLE_ISSUER: oidc.issuer,
  OAUTH_OIDC_ACME_ISSUER: oidc.issuer,
  OAUTH_OIDC_ACME_CLIENT_ID: ACME.clientId,
  OAUTH_OIDC_ACME_CLIENT_SECRET: ACME.clientSecret,
  OAUTH_OIDC_ACME_DISPLAY_NAME: 'Acme ID',
});

/** The providers an OAuth suite signs in with, the environment that configures them, and one stop for both. */
export interface TestProviders {
  readonly oidc: TestOidcProvider;
  readonly github: FakeGitHub;
  /** providersEnv's: github, google and acme. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

/** Starts the test OpenID Provider (ACME and GOOGLE as clients, REDIRECT as their redirect URI) and the GitHub stand-in. */
export async function startProviders(): Promise<TestProviders> {
  const oidc = await startOidcProvider({ redirectUris: [REDIRECT], clients: [ACME, GOOGLE] });
  const github = await startFakeGitHub().catch(async (error: unknown) => {
    await oidc.stop();
    throw error;
  });
  return {
    oidc,
    github,
    env: providersEnv(oidc, github),
    stop: async () => {
      await Promise.all([oidc.stop(), github.stop()]);
    },
  };
}

/** startOAuth (with `token`: a link to that caller); fails the test unless it succeeds. */
export async function startSignIn(gql: Gql, provider: string, token?: string, redirectUri = REDIRECT) {
  const response = await gql<{ startOAuth: { authorizationUrl: string; state: string } }>(
    START,
    { provider, redirectUri },
    { token },
  );
  if (!response.data?.startOAuth) throw new Error(`startOAuth failed: ${JSON.stringify(response.errors)}`);
  return response.data.startOAuth;
}

/** startOAuth, then the person at the provider: what comes back on the redirect URI. */
export async function authorize(
  providers: { gql: Gql; oidc: TestOidcProvider; github: FakeGitHub },
  provider: string,
  account: OidcAccount | GitHubAccount,
  token?: string,
): Promise<Callback> {
  const { authorizationUrl, state } = await startSignIn(providers.gql, provider, token);
  const back =
    provider === 'github'
      ? providers.github.authorize(authorizationUrl, account as GitHubAccount)
      : await providers.oidc.authorize(authorizationUrl, account as OidcAccount);
  expect(`${back.origin}${back.pathname}`).toBe(REDIRECT);
  expect(back.searchParams.get('state')).toBe(state);
  return { provider, code: back.searchParams.get('code') ?? '', state };
}

/** A person at the test OpenID Provider, with a verified email unless `overrides` say otherwise. */
export const oidcAccount = (overrides: Partial<OidcAccount> = {}): OidcAccount => ({
  sub: `sub-${randomUUID()}`,
  email: uniqueEmail('oidc'),
  email_verified: true,
  name: 'Ada Lovelace',
  ...overrides,
});

let githubIds = 1000;
/** A person at the GitHub stand-in: a verified primary and a verified secondary email unless `overrides` say otherwise. */
export const githubAccount = (overrides: Partial<GitHubAccount> = {}): GitHubAccount => {
  const id = githubIds++;
  return {
    id,
    login: `octo${id}`,
    name: 'The Octocat',
    emails: [
      { email: uniqueEmail('secondary'), primary: false, verified: true },
      { email: uniqueEmail('primary'), primary: true, verified: true },
    ],
    ...overrides,
  };
};

/** loginWithOAuth with a callback. */
export const loginWithCallback = (gql: Gql, input: Callback) => gql<{ loginWithOAuth: Payload }>(LOGIN, { input });
