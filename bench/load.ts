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
  /** Response times (ms) of every response, good or not, at the median and the 99th percentile. */
  readonly p50: number;
  readonly p99: number;
  /** The first failed response, to say why. */
  readonly firstError?: string;
  /** How long the load ran (s). */
  readonly seconds: number;
  /** Every response's time (ms), in arrival order: what `combine` takes the percentiles of. */
  readonly latencies: readonly number[];
}

/** The value below which a share `q` (0 to 1) of the sorted `values` fall (0 when there are none). */
const percentile = (sorted: readonly number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

/**
 * One result from several runs of the same scenario (e.g. the slices of an alternating measurement): the counts and
 * times added up, the rate over the total time, the percentiles over every response of every run.
 */
export function combine(results: readonly LoadResult[]): LoadResult {
  return summarise({
    ok: results.reduce((sum, result) => sum + result.ok, 0),
    errors: results.reduce((sum, result) => sum + result.errors, 0),
    seconds: results.reduce((sum, result) => sum + result.seconds, 0),
    latencies: results.flatMap((result) => result.latencies),
    firstError: results.find((result) => result.firstError !== undefined)?.firstError,
  });
}

/** A result from its counts, time and response times: the rate over the time, the percentiles over the times. */
function summarise(counted: Pick<LoadResult, 'ok' | 'errors' | 'seconds' | 'latencies' | 'firstError'>): LoadResult {
  const { ok, errors, seconds, latencies, firstError } = counted;
  const sorted = latencies.toSorted((a, b) => a - b);
  return {
    rps: seconds > 0 ? ok / seconds : 0,
    ok,
    errors,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    ...(firstError === undefined ? {} : { firstError }),
    seconds,
    latencies,
  };
}

/** Runs `scenario` against `${url}${scenario.path ?? '/graphql'}` for `seconds` and summarises it. */
export async function measure(url: string, scenario: Scenario, seconds: number): Promise<LoadResult> {
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  const { body, headers } = scenario;
  const perRequest = typeof body !== 'string' || typeof headers === 'function';
  const latencies: number[] = [];
  const options: autocannon.Options = {
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
  };
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(options, (error, done) => (error ? reject(error) : resolve(done)));
    instance.on('response', (_client, _status, _bytes, responseTime) => latencies.push(responseTime));
  });
  return summarise({ ok, errors: failed + result.errors, seconds: result.duration, latencies, firstError });
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
