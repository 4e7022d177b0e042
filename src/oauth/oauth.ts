// The OAuth part of the object graph: configured providers, the redirect-URI allow-list and the state store.
import type { Logger } from 'pino';
import type { Call } from '../call.ts';
import type { ClientInfo } from '../clients/registry.ts';
import type { Clock } from '../clock.ts';
import type { OAuthConfig } from '../config.ts';
import type { KeyValueStore } from '../store/store.ts';
import { createOAuthProviders, type OAuthProviders } from './providers.ts';
import { OAuthStates } from './state.ts';

export interface OAuth {
  readonly providers: OAuthProviders;
  readonly states: OAuthStates;
  /** Exact redirect URIs a sign-in for any client may return to (OAUTH_REDIRECT_URIS). */
  readonly redirectUris: ReadonlySet<string>;
}

/** The configured providers, for a sign-in page. */
export function listOAuthProviders(deps: { readonly oauth: OAuth }, _call: Call) {
  return deps.oauth.providers.list();
}

/**
 * Whether an attempt of `client` may return to `redirectUri`: one of OAUTH_REDIRECT_URIS, or of the client's own
 * redirectUris (exact match; another client's are refused).
 */
export function redirectUriAllowed(oauth: OAuth, client: ClientInfo, redirectUri: string): boolean {
  return oauth.redirectUris.has(redirectUri) || client.redirectUris.includes(redirectUri);
}

export function createOAuth(config: OAuthConfig, store: KeyValueStore, clock: Clock, logger: Logger): OAuth {
  return {
    // Facts only (kind, error codes): provider messages and bodies may carry codes or tokens.
    providers: createOAuthProviders(config, (facts) => logger.warn(facts, 'OAuth provider call failed')),
    states: new OAuthStates(store, clock),
    redirectUris: new Set(config.redirectUris),
  };
}
