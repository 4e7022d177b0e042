// Serves /.well-known/jwks.json and the RFC 8414 metadata document.
import type { Plugin } from 'graphql-yoga';
import type { KeyStore } from '../tokens/key-store.ts';
import type { Scope } from '../tokens/scopes.ts';
import { ADMIN_SCOPES, USER_SCOPES } from '../tokens/scopes.ts';

export function useWellKnown(keys: KeyStore, settings: { issuer: string; publicUrl: string }): Plugin {
  const jwks = JSON.stringify(keys.jwks);
  const metadata = JSON.stringify({
    issuer: settings.issuer,
    jwks_uri: `${settings.publicUrl}/.well-known/jwks.json`,
    response_types_supported: [],
    grant_types_supported: ['refresh_token'],
    scopes_supported: [...USER_SCOPES, ...ADMIN_SCOPES] satisfies Scope[],
    token_endpoint_auth_methods_supported: ['none'],
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
