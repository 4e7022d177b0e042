// Load generation: one POST scenario under autocannon (GraphQL by default, or another path such as the token
// endpoint), counting only 200 responses without GraphQL `errors` as done.
import autocannon from 'autocannon';

export interface Scenario {
  readonly connections: number;
  /** Where to POST (default /graphql). */
  readonly path?: string;
  /** The body's media type (default application/json). */
  readonly contentType?: string;
  /** The JSON body: fixed, or built per request (e.g. from a pool of single-use tokens). */
  readonly body: string | (() => string);
  /** Extra headers: fixed, or built per request (e.g. a different user's access token each time). */
  readonly headers?: Readonly<Record<string, string>> | (() => Readonly<Record<string, string>>);
  /** Sees every response body (e.g. to put a rotated token back in the pool). */
  readonly onBody?: (body: string) => void;
}

export interface LoadResult {
  /** Responses that were HTTP 200 without GraphQL `errors`, per second. */
  readonly rps: number;
  readonly ok: number;
  /** Responses that were not 200 or carried `errors`, plus connection errors and timeouts. */
  readonly errors: number;
  readonly p50: number;
  readonly p99: number;
  /** The first failed response, to say why. */
  readonly firstError?: string;
}

/** Runs `scenario` against `${url}${scenario.path ?? '/graphql'}` for `seconds` and summarises it. */
export async function measure(url: string, scenario: Scenario, seconds: number): Promise<LoadResult> {
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  const { body, headers } = scenario;
  const perRequest = typeof body !== 'string' || typeof headers === 'function';
  const result = await autocannon({
    url: `${url}${scenario.path ?? '/graphql'}`,
    connections: scenario.connections,
    duration: seconds,
    method: 'POST',
    headers: {
      'content-type': scenario.contentType ?? 'application/json',
      accept: 'application/json',
      ...(typeof headers === 'function' ? {} : headers),
    },
    requests: [
      {
        ...(perRequest
          ? {
              setupRequest: (request) => ({
                ...request,
                ...(typeof body === 'string' ? { body } : { body: body() }),
                ...(typeof headers === 'function' ? { headers: { ...request.headers, ...headers() } } : {}),
              }),
            }
          : { body }),
        onResponse: (status, text) => {
          scenario.onBody?.(text);
          if (status === 200 && !text.includes('"errors"')) ok++;
          else {
            failed++;
            firstError ??= `HTTP ${status} ${text.slice(0, 300)}`;
          }
        },
      },
    ],
  });
  return {
    rps: ok / result.duration,
    ok,
    errors: failed + result.errors,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ...(firstError === undefined ? {} : { firstError }),
  };
}

/** One GraphQL request with fetch; throws on HTTP or GraphQL errors. */
export async function gql<T>(
  url: string,
  query: string,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<T> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const result = (await response.json()) as { data?: T; errors?: unknown };
  if (!response.ok || result.errors || !result.data) {
    throw new Error(`${query.slice(0, 40)}…: HTTP ${response.status} ${JSON.stringify(result.errors)}`);
  }
  return result.data;
}
