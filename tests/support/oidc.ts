// A throwaway OpenID Provider (panva's oidc-provider) on 127.0.0.1, with its login and consent pages replaced by a
// route that signs in whichever account the test names, so a whole authorization round trip runs without a browser.
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Provider } from 'oidc-provider';

export interface OidcAccount {
  sub: string;
  email?: string;
  /** A boolean per OIDC Core; some providers send the strings "true" and "false", which tests reproduce. */
  email_verified?: boolean | string;
  name?: string;
}

export interface OidcClient {
  clientId: string;
  clientSecret: string;
}

export interface TestOidcProvider {
  readonly issuer: string;
  readonly clients: readonly OidcClient[];
  /** Paths the provider was asked for, in order (e.g. to see that its JWKS was fetched). */
  readonly requests: string[];
  /**
   * Follows an authorization URL as a browser would (cookies, redirects), signs in as `account` and consents, or
   * with `deny` refuses consent; returns the final redirect to the client's redirect URI (code or error, and state).
   */
  authorize(authorizationUrl: string, account: OidcAccount, options?: { deny?: boolean }): Promise<URL>;
  stop(): Promise<void>;
}

export async function startOidcProvider(options: {
  redirectUris: string[];
  clients: OidcClient[];
}): Promise<TestOidcProvider> {
  const accounts = new Map<string, OidcAccount>();
  let next: { sub: string; deny: boolean } | undefined;
  let provider: Provider | undefined;

  const interaction = async (req: IncomingMessage, res: ServerResponse, oidc: Provider) => {
    const details = await oidc.interactionDetails(req, res);
    if (!next) throw new Error('authorize() was not called');
    if (next.deny) {
      await oidc.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'End-User aborted interaction' },
        { mergeWithLastSubmission: false },
      );
    } else if (details.prompt.name === 'login') {
      await oidc.interactionFinished(req, res, { login: { accountId: next.sub } }, { mergeWithLastSubmission: false });
    } else {
      const grant = new oidc.Grant({
        accountId: String(details.session?.accountId),
        clientId: String(details.params.client_id),
      });
      grant.addOIDCScope(String(details.params.scope));
      await oidc.interactionFinished(
        req,
        res,
        { consent: { grantId: await grant.save() } },
        { mergeWithLastSubmission: true },
      );
    }
  };

  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(new URL(req.url ?? '/', 'http://localhost').pathname);
    if (!provider) {
      res.statusCode = 503;
      res.end();
      return;
    }
    if (req.url?.startsWith('/interaction/')) {
      interaction(req, res, provider).catch((error: unknown) => {
        res.statusCode = 500;
        res.end(String(error));
      });
      return;
    }
    provider.callback()(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

  provider = new Provider(issuer, {
    clients: options.clients.map((client) => ({
      client_id: client.clientId,
      client_secret: client.clientSecret,
      redirect_uris: options.redirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    })),
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'test-key', alg: 'RS256', use: 'sig' } as never] },
    cookies: { keys: ['oidc-test-cookie-key'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    findAccount: (_ctx, sub) => {
      const account = accounts.get(sub);
      return account ? { accountId: sub, claims: () => ({ ...account }) } : undefined;
    },
    interactions: { url: (_ctx, details) => `/interaction/${details.uid}` },
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => true },
    ttl: { AuthorizationCode: 60, AccessToken: 600, IdToken: 600, Interaction: 600, Session: 600, Grant: 600 },
  });

  return {
    issuer,
    clients: options.clients,
    requests,
    async authorize(authorizationUrl, account, { deny = false } = {}) {
      accounts.set(account.sub, account);
      next = { sub: account.sub, deny };
      const cookies = new Map<string, string>();
      let url = new URL(authorizationUrl);
      for (let hop = 0; hop < 10; hop++) {
        const response = await fetch(url, {
          redirect: 'manual',
          headers: { cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; ') },
        });
        for (const cookie of response.headers.getSetCookie()) {
          const [pair = ''] = cookie.split(';');
          const at = pair.indexOf('=');
          const [name, value] = [pair.slice(0, at).trim(), pair.slice(at + 1).trim()];
          if (value === '') cookies.delete(name);
          else cookies.set(name, value);
        }
        const location = response.headers.get('location');
        if (!location) throw new Error(`the provider answered ${response.status}: ${await response.text()}`);
        url = new URL(location, url);
        if (url.origin !== issuer) return url;
      }
      throw new Error('too many redirects');
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
