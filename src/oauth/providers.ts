// The configured providers (GitHub, Google, generic OpenID Connect), each behind the same ProviderClient.
import type { OAuthConfig } from '../config.ts';
import { badInput } from '../errors.ts';
import { createGitHubClient } from './github.ts';
import { createOidcClient } from './oidc.ts';
import type { FailureReporter, ProviderClient } from './provider-client.ts';

export interface ProviderInfo {
  readonly id: string;
  readonly name: string;
}

export class OAuthProviders {
  readonly #clients: ReadonlyMap<string, ProviderClient>;

  constructor(clients: readonly ProviderClient[]) {
    this.#clients = new Map(clients.map((c) => [c.id, c]));
  }

  /** The providers a client may offer, in configuration order. */
  list(): ProviderInfo[] {
    return [...this.#clients.values()].map(({ id, name }) => ({ id, name }));
  }

  /** The provider with this id; BAD_USER_INPUT (field `provider`) when none is configured. */
  get(id: string): ProviderClient {
    const found = this.#clients.get(id);
    if (!found) throw badInput('provider', 'No such OAuth provider is configured');
    return found;
  }
}

export function createOAuthProviders(config: OAuthConfig, report: FailureReporter): OAuthProviders {
  return new OAuthProviders(
    config.providers.map((provider) =>
      provider.kind === 'github'
        ? createGitHubClient(provider, config.timeoutMs, report)
        : createOidcClient(provider, config.timeoutMs, report),
    ),
  );
}
