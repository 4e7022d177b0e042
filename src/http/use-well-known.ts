// Serves /.well-known/jwks.json and the RFC 8414 metadata document.
import type { Plugin } from 'graphql-yoga';
import type { KeyStore } from '../tokens/key-store.ts';
import { BUILT_IN_SCOPES } from '../tokens/scopes.ts';
import { TOKEN_ENDPOINT_PATH } from './use-token-endpoint.ts';

export function useWellKnown(keys: KeyStore, settings: { issuer: string; publicUrl: string }): Plugin {
  const jwks = JSON.stringify(keys.jwks);
  const metadata = JSON.stringify({
    issuer: settings.issuer,
    jwks_uri: `${settings.publicUrl}/.well-known/jwks.json`,
    token_endpoint: `${settings.publicUrl}${TOKEN_ENDPOINT_PATH}`,
    response_types_supported: [],
    // Sign-in and refresh are GraphQL operations; the token endpoint serves client credentials only.
    grant_types_supported: ['client_credentials'],
    // Built-in scopes only: clients' API scopes are their own business, and this document is public and cached.
    scopes_supported: BUILT_IN_SCOPES,
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    service_documentation: `${settings.publicUrl}/graphql`,
  });
  const routes: Record<string, string> = {
    '/.well-known/jwks.json': jwks,
    '/.well-known/oauth-authorization-server': metadata,
  };
  return {
    onRequest({ url, endResponse, fetchAPI, request }) {
      const body = routes[url.pathname];
      if (body === undefined) return;
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        endResponse(new fetchAPI.Response(null, { status: 405, headers: { allow: 'GET, HEAD' } }));
        return;
      }
      endResponse(
        new fetchAPI.Response(request.method === 'HEAD' ? null : body, {
          status: 200,
          headers: {
            'content-type': 'application/json',
            'cache-control': 'public, max-age=300',
            'access-control-allow-origin': '*',
          },
        }),
      );
    },
  };
}
