// A small GraphQL-over-HTTP client for tests, and helpers for the common flows.
import { randomUUID } from 'node:crypto';

export interface GraphQLResponse<T = Record<string, any>> {
  status: number;
  headers: Headers;
  data: T | null | undefined;
  errors: { message: string; path?: string[]; extensions?: Record<string, any> }[] | undefined;
}

export interface RequestOptions {
  token?: string;
  headers?: Record<string, string>;
}

export type Gql = <T = Record<string, any>>(
  query: string,
  variables?: Record<string, unknown>,
  options?: RequestOptions,
) => Promise<GraphQLResponse<T>>;

export function graphqlClient(baseUrl: string): Gql {
  return async (query, variables, options = {}) => {
    const response = await fetch(`${baseUrl}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        ...options.headers,
      },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: any; errors?: any };
    return { status: response.status, headers: response.headers, data: body.data, errors: body.errors };
  };
}

/** The extensions of the first error (code, reason, field…), or undefined when there is none. */
export const extensionsOf = (response: GraphQLResponse) => response.errors?.[0]?.extensions;

/** The `extensions.code` of the first error, or undefined when there is none. */
export const errorCode = (response: GraphQLResponse) => response.errors?.[0]?.extensions?.code as string | undefined;

export const PAYLOAD = `accessToken accessTokenExpiresAt refreshToken refreshTokenExpiresAt tokenType
  user { id email emailVerified displayName roles createdAt }
  session { id createdAt lastUsedAt expiresAt userAgent ipAddress current }`;

export interface Payload {
  accessToken: string;
  accessTokenExpiresAt: string;
  refreshToken: string;
  refreshTokenExpiresAt: string;
  tokenType: string;
  user: {
    id: string;
    email: string;
    emailVerified: boolean;
    displayName: string | null;
    roles: string[];
    createdAt: string;
  };
  session: {
    id: string;
    createdAt: string;
    lastUsedAt: string;
    expiresAt: string;
    userAgent: string | null;
    ipAddress: string | null;
    current: boolean;
  };
}

/** The register and login mutations, answering the whole PAYLOAD. */
export const REGISTER_MUTATION = `mutation($input: RegisterInput!) { register(input: $input) { ${PAYLOAD} } }`;
export const LOGIN_MUTATION = `mutation($input: LoginInput!) { login(input: $input) { ${PAYLOAD} } }`;

export const uniqueEmail = (prefix = 'user') => `${prefix}-${randomUUID().slice(0, 8)}@example.com`;

/** Registers a fresh account and returns its payload; fails the test on any error. */
export async function registerUser(
  gql: Gql,
  input: { email?: string; password?: string; displayName?: string | null } = {},
): Promise<Payload & { password: string }> {
  const password = input.password ?? 'correct horse battery';
  const result = await gql<{ register: Payload }>(REGISTER_MUTATION, {
    input: { email: input.email ?? uniqueEmail(), password, displayName: input.displayName },
  });
  if (!result.data?.register) throw new Error(`register failed: ${JSON.stringify(result.errors)}`);
  return { ...result.data.register, password };
}

export async function loginUser(gql: Gql, email: string, password: string, headers?: Record<string, string>) {
  return gql<{ login: Payload }>(LOGIN_MUTATION, { input: { email, password } }, { headers });
}

export async function refreshToken(gql: Gql, token: string) {
  return gql<{ refresh: Payload }>(`mutation($t: String!) { refresh(refreshToken: $t) { ${PAYLOAD} } }`, { t: token });
}

/** Signs an existing account in again (a new session); fails the test unless it succeeds. */
export async function signIn(gql: Gql, email: string, password: string, headers?: Record<string, string>) {
  const response = await loginUser(gql, email, password, headers);
  if (!response.data?.login) throw new Error(`login failed: ${JSON.stringify(response.errors)}`);
  return response.data.login;
}

/** The revokeSession mutation (one of the caller's sessions, by id). */
export const REVOKE_SESSION = 'mutation($id: ID!) { revokeSession(id: $id) }';

/** Revokes session `id` with `token` (its user's); the whole answer, `{ revokeSession: true }` on success. */
export const revokeSession = (gql: Gql, id: string, token: string) =>
  gql<{ revokeSession: boolean }>(REVOKE_SESSION, { id }, { token });

/** `{ me { <fields> } }` with `token`. */
export const me = <T = { id: string }>(gql: Gql, token: string, fields = 'id') =>
  gql<{ me: T | null }>(`{ me { ${fields} } }`, {}, { token });
