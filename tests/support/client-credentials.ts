// Clients and their service tokens for suites that need them: a client made through createClient, and a token
// request to POST /oauth/token (client credentials) as an OAuth library would send it.
import type { Gql } from './graphql.ts';

export interface CreatedClient {
  readonly id: string;
  /** The secret createClient showed once; null for a PUBLIC client. */
  readonly secret: string | null;
}

/** Creates a client through the admin API (scope clients:admin); fails the test on any error. */
export async function createTestClient(
  gql: Gql,
  adminToken: string,
  input: {
    id: string;
    type?: 'PUBLIC' | 'CONFIDENTIAL';
    name?: string;
    audiences?: string[];
    scopes?: string[];
    redirectUris?: string[];
    allowedOrigins?: string[];
  },
): Promise<CreatedClient> {
  const response = await gql<{ createClient: { client: { id: string }; clientSecret: string | null } }>(
    'mutation($input: CreateClientInput!) { createClient(input: $input) { client { id } clientSecret } }',
    { input: { name: input.id, type: 'CONFIDENTIAL', ...input } },
    { token: adminToken },
  );
  if (!response.data?.createClient) throw new Error(`createClient failed: ${JSON.stringify(response.errors)}`);
  return { id: response.data.createClient.client.id, secret: response.data.createClient.clientSecret };
}

export interface TokenRequestOptions {
  /** How the client authenticates: HTTP Basic (default), the form body, or not at all. */
  readonly method?: 'basic' | 'post' | 'none';
  readonly clientId?: string;
  readonly secret?: string;
  /** The form's parameters besides the client's (default grant_type=client_credentials). */
  readonly form?: Record<string, string> | [string, string][];
  readonly headers?: Record<string, string>;
}

export interface TokenResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly body: Record<string, unknown>;
}

/** The Basic credential of RFC 6749 §2.3.1: each part form-urlencoded, then base64. */
export const basicCredential = (clientId: string, secret: string): string =>
  `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/** POSTs a token request to `${baseUrl}/oauth/token` and reads the answer (JSON, or `{}` when it is not). */
export async function requestToken(baseUrl: string, options: TokenRequestOptions = {}): Promise<TokenResponse> {
  const method = options.method ?? 'basic';
  const form = new URLSearchParams(options.form ?? { grant_type: 'client_credentials' });
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (method === 'basic' && options.clientId !== undefined) {
    headers.authorization = basicCredential(options.clientId, options.secret ?? '');
  }
  if (method === 'post') {
    if (options.clientId !== undefined) form.append('client_id', options.clientId);
    if (options.secret !== undefined) form.append('client_secret', options.secret);
  }
  const response = await fetch(`${baseUrl}/oauth/token`, {
    method: 'POST',
    headers: { ...headers, ...options.headers },
    body: form.toString(),
  });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {}
  return { status: response.status, headers: response.headers, text, body };
}

/** A service token for the client; fails the test unless the endpoint issues one. */
export async function serviceToken(baseUrl: string, client: CreatedClient, scope?: string): Promise<string> {
  const response = await requestToken(baseUrl, {
    clientId: client.id,
    secret: client.secret ?? '',
    ...(scope === undefined ? {} : { form: { grant_type: 'client_credentials', scope } }),
  });
  if (response.status !== 200) throw new Error(`token request failed: ${response.status} ${response.text}`);
  return response.body.access_token as string;
}
