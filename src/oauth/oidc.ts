// A generic OpenID Connect provider (Google is one): discovery from the issuer on first use, authorization code
// flow with PKCE and nonce, and an ID token verified by openid-client (JWKS signature, iss, aud, exp, nonce).
import * as client from 'openid-client';
import type { OAuthProviderConfig } from '../config.ts';
import type { FailureReporter, ProviderClient, ProviderProfile } from './provider-client.ts';
import { providerFailure, verifiedEmailOf } from './provider-client.ts';

type OidcConfig = Extract<OAuthProviderConfig, { kind: 'oidc' }>;

const SCOPE = 'openid email profile';

const text = (value: unknown): string | null =>
  typeof value === 'string' && value.trim() !== '' ? value.trim() : null;

// OIDC Core says a JSON boolean; some providers (AWS Cognito among them) send the strings "true" and "false".
// Anything else, a missing claim included, is unverified: a truthiness test would take "false" for yes.
const isTrue = (value: unknown): boolean => value === true || value === 'true';

/** Builds the client; nothing is fetched until the first sign-in, so a provider that is down does not stop us. */
export function createOidcClient(provider: OidcConfig, timeoutMs: number, report: FailureReporter): ProviderClient {
  // The configuration only lets http:// through for a loopback issuer outside production (local and test providers).
  const insecure = new URL(provider.issuer).protocol === 'http:';
  let configuration: Promise<client.Configuration> | undefined;

  const configure = async (): Promise<client.Configuration> => {
    const discovered = await client.discovery(new URL(provider.issuer), provider.clientId, undefined, undefined, {
      timeout: timeoutMs / 1000,
      execute: insecure ? [client.allowInsecureRequests] : [],
    });
    const metadata = discovered.serverMetadata();
    // Discovery's default is client_secret_basic; prefer the body when the provider takes it (Google does).
    const methods = metadata.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
    const auth = methods.includes('client_secret_post')
      ? client.ClientSecretPost(provider.clientSecret)
      : client.ClientSecretBasic(provider.clientSecret);
    const config = new client.Configuration(metadata, provider.clientId, provider.clientSecret, auth);
    config.timeout = timeoutMs / 1000;
    if (insecure) client.allowInsecureRequests(config);
    // Token-endpoint ID tokens are verified against the provider's JWKS too, not only trusted for arriving over TLS.
    client.enableNonRepudiationChecks(config);
    return config;
  };

  const discover = () => {
    configuration ??= configure().catch((error: unknown) => {
      configuration = undefined; // try again on the next sign-in
      throw error;
    });
    return configuration;
  };

  const fail = (error: unknown) => providerFailure(provider.name, error, report);

  return {
    id: provider.id,
    name: provider.name,
    async authorizationUrl({ redirectUri, state, codeChallenge, nonce }) {
      try {
        return client.buildAuthorizationUrl(await discover(), {
          redirect_uri: redirectUri,
          scope: SCOPE,
          state,
          nonce,
          code_challenge: codeChallenge,
          code_challenge_method: 'S256',
        });
      } catch (error) {
        throw fail(error);
      }
    },
    async exchange({ redirectUri, code, state, codeVerifier, nonce }): Promise<ProviderProfile> {
      try {
        const config = await discover();
        const metadata = config.serverMetadata();
        const callback = new URL(redirectUri);
        callback.searchParams.set('code', code);
        callback.searchParams.set('state', state);
        // Clients hand us code and state only. RFC 9207's `iss` guards against mix-up, which the state already
        // prevents here: it is bound to this provider and redeemed only at this provider's token endpoint.
        if (metadata.authorization_response_iss_parameter_supported) callback.searchParams.set('iss', metadata.issuer);
        const tokens = await client.authorizationCodeGrant(config, callback, {
          pkceCodeVerifier: codeVerifier,
          expectedState: state,
          expectedNonce: nonce,
          idTokenExpected: true,
        });
        const claims = tokens.claims();
        if (!claims) throw new client.ClientError('no ID token');
        // Some providers keep email out of the ID token when an access token for the UserInfo endpoint is issued.
        // The address and its email_verified are taken from the same source, never one from each.
        let source: Record<string, unknown> = claims;
        if (text(claims.email) === null && metadata.userinfo_endpoint) {
          source = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
        }
        return {
          providerUserId: claims.sub,
          verifiedEmail: verifiedEmailOf(text(source.email), isTrue(source.email_verified)),
          displayName: text(claims.name) ?? text(source.name),
        };
      } catch (error) {
        throw fail(error);
      }
    },
  };
}
