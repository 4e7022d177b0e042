// POST /oauth/token: the client-credentials grant over HTTP (RFC 6749 §4.4, §2.3.1, §5.1, §5.2). Reads the form
// body and the client authentication; the grant's rules are in clients/client-credentials.ts.
import type { IncomingMessage } from 'node:http';
import type { Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';
import {
  type ClientAuthentication,
  type ClientCredentialsGrant,
  TokenRequestError,
} from '../clients/client-credentials.ts';
import { readBodyAtMost } from './request-body.ts';
import { requestMeta } from './request-meta.ts';

export const TOKEN_ENDPOINT_PATH = '/oauth/token';

/** A token request is a few short parameters: anything longer is not one, and is not read into memory. */
const MAX_BODY_BYTES = 16 * 1024;

/** RFC 6749 §5.2: a 401 for client authentication names the scheme the client may use. */
const CHALLENGE = 'Basic realm="oauth", charset="UTF-8"';

const FORM = 'application/x-www-form-urlencoded';

export interface TokenEndpointOptions {
  readonly trustProxy: number;
  readonly logger: () => Logger;
}

type Fetch = { Response: typeof Response };

/** RFC 6749 §5.1: token answers, good or bad, are never cached. */
function answer(fetchAPI: Fetch, status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new fetchAPI.Response(JSON.stringify(body), {
    status,
    headers: {
      'content-type': 'application/json;charset=UTF-8',
      'cache-control': 'no-store',
      pragma: 'no-cache',
      ...headers,
    },
  });
}

function refusal(fetchAPI: Fetch, error: TokenRequestError): Response {
  const headers: Record<string, string> = {};
  if (error.code === 'invalid_client') headers['www-authenticate'] = CHALLENGE;
  if (error.retryAfterSeconds !== undefined) headers['retry-after'] = String(error.retryAfterSeconds);
  return answer(fetchAPI, error.status, { error: error.code, error_description: error.message }, headers);
}

/** The body as text, or undefined when it is longer than MAX_BODY_BYTES (reading stops there). */
async function readBody(request: Request): Promise<string | undefined> {
  const bytes = await readBodyAtMost(request, MAX_BODY_BYTES);
  return bytes && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

/**
 * The form's parameters, each at most once (RFC 6749 §3.2); one sent without a value is as if omitted (§3.1).
 * Unknown parameters are ignored (§3.2).
 */
function parameters(body: string): Map<string, string> {
  const form = new URLSearchParams(body);
  const values = new Map<string, string>();
  for (const name of new Set(form.keys())) {
    if (form.getAll(name).length > 1) throw new TokenRequestError('invalid_request', 'A parameter is repeated');
    const value = form.get(name) as string;
    if (value !== '') values.set(name, value);
  }
  return values;
}

/** One part of a Basic credential: form-urlencoded before base64 (RFC 6749 §2.3.1). */
function formDecode(text: string): string {
  return decodeURIComponent(text.replace(/\+/g, ' '));
}

/**
 * The client's authentication: HTTP Basic or the body's client_id and client_secret, never both (RFC 6749
 * §2.3.1). An Authorization header that is not a well-formed Basic credential fails authentication (401).
 */
function authenticationOf(authorization: string | null, form: Map<string, string>): ClientAuthentication | undefined {
  const bodyId = form.get('client_id');
  const bodySecret = form.get('client_secret');
  if (authorization !== null) {
    if (bodySecret !== undefined) {
      throw new TokenRequestError('invalid_request', 'Use one client authentication method, not two');
    }
    const match = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(authorization);
    const decoded = match ? Buffer.from(match[1] as string, 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new TokenRequestError('invalid_client', 'Client authentication failed');
    let clientId: string;
    let secret: string;
    try {
      clientId = formDecode(decoded.slice(0, colon));
      secret = formDecode(decoded.slice(colon + 1));
    } catch {
      throw new TokenRequestError('invalid_client', 'Client authentication failed');
    }
    // A client_id in the body too is allowed (some libraries send it) only when it names the same client.
    if (bodyId !== undefined && bodyId !== clientId) {
      throw new TokenRequestError('invalid_request', 'Use one client authentication method, not two');
    }
    if (clientId === '' || secret === '') throw new TokenRequestError('invalid_client', 'Client authentication failed');
    return { method: 'client_secret_basic', clientId, secret };
  }
  if (bodyId === undefined || bodySecret === undefined) return undefined;
  return { method: 'client_secret_post', clientId: bodyId, secret: bodySecret };
}

/** Serves POST /oauth/token; every other method there is 405. */
export function useTokenEndpoint(
  grant: ClientCredentialsGrant,
  options: TokenEndpointOptions,
): Plugin<Record<string, unknown>, { req?: IncomingMessage }> {
  return {
    // Not async itself: every other request passes on without waiting a turn for a promise.
    onRequest(payload) {
      if (payload.url.pathname !== TOKEN_ENDPOINT_PATH) return;
      return serve(payload);
    },
  };

  async function serve({
    request,
    serverContext,
    endResponse,
    fetchAPI,
  }: Parameters<NonNullable<Plugin<Record<string, unknown>, { req?: IncomingMessage }>['onRequest']>>[0]) {
    if (request.method !== 'POST') {
      endResponse(
        answer(fetchAPI, 405, { error: 'invalid_request', error_description: 'Use POST' }, { allow: 'POST' }),
      );
      return;
    }
    try {
      const meta = requestMeta(serverContext.req, request.headers, options.trustProxy);
      await grant.admit(meta);
      const type = (request.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
      if (type !== FORM) {
        throw new TokenRequestError('invalid_request', `The body must be ${FORM}`);
      }
      const body = await readBody(request);
      if (body === undefined) {
        endResponse(answer(fetchAPI, 413, { error: 'invalid_request', error_description: 'The body is too large' }));
        return;
      }
      const form = parameters(body);
      const issued = await grant.exchange({
        grantType: form.get('grant_type'),
        scope: form.get('scope'),
        authentication: authenticationOf(request.headers.get('authorization'), form),
        meta,
      });
      endResponse(
        answer(fetchAPI, 200, {
          access_token: issued.accessToken,
          token_type: 'Bearer',
          expires_in: issued.expiresIn,
          scope: issued.scope,
        }),
      );
    } catch (error) {
      if (error instanceof TokenRequestError) {
        endResponse(refusal(fetchAPI, error));
        return;
      }
      // Never the request: its body and Authorization header carry the secret.
      options.logger().error({ err: error }, 'token request failed');
      endResponse(answer(fetchAPI, 500, { error: 'server_error', error_description: 'Internal error' }));
    }
  }
}
