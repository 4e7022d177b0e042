// Accounts for the bench and the scenarios that spread requests over many of them: `me` and `refresh` with
// every request for a different user and session (round robin), so caches and indexes see a realistic spread.
import { gql, type Scenario } from './load.ts';

export interface Tokens {
  accessToken: string;
  refreshToken: string;
}

const REGISTER = 'mutation($input: RegisterInput!) { register(input: $input) { accessToken refreshToken } }';
const REFRESH =
  'mutation($t: String!) { refresh(refreshToken: $t) { accessToken refreshToken refreshTokenExpiresAt } }';

/** The rotated refresh token in a refresh response, found without parsing the whole body. */
const rotatedToken = (body: string) => /"refreshToken":"([^"]+)"/.exec(body)?.[1];

/** Refresh's GraphQL request body for one token (what the service and the refresh floor both read). */
export const refreshBody = (token: string) => JSON.stringify({ query: REFRESH, variables: { t: token } });

/**
 * Signs up `count` accounts `${prefix}-<i>@example.com` with `password`, `inFlight` at a time (each costs a bcrypt
 * hash on the service), and returns their first tokens in order.
 */
export async function registerAccounts(
  url: string,
  options: { count: number; inFlight: number; prefix: string; password: string },
): Promise<Tokens[]> {
  const { count, inFlight, prefix, password } = options;
  const accounts = new Array<Tokens>(count);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const input = { email: `${prefix}-${i}@example.com`, password };
      accounts[i] = (await gql<{ register: Tokens }>(url, REGISTER, { input })).register;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return accounts;
}

/**
 * Refresh with a pool of single-use tokens, last in first out: each request spends the token most recently put
 * back, so a few sessions stay hot (the single-user shape).
 */
export function hotRefreshScenario(pool: string[], connections: number): Scenario {
  return {
    connections,
    body: () => refreshBody(pool.pop() ?? 'the-pool-ran-dry'),
    onBody: (body) => {
      const token = rotatedToken(body);
      if (token) pool.push(token);
    },
  };
}

/**
 * Refresh first in first out over every session: each request spends the token that waited longest and its
 * successor joins the back of the queue, so consecutive requests touch different sessions and users.
 */
export function spreadRefreshScenario(tokens: readonly string[], connections: number): Scenario {
  const queue = [...tokens];
  let head = 0;
  const take = () => {
    const token = queue[head];
    if (token === undefined) return 'the-queue-ran-dry';
    head++;
    // Drop the spent front now and then, so the array stays about as long as the number of sessions.
    if (head >= 4096) {
      queue.splice(0, head);
      head = 0;
    }
    return token;
  };
  return {
    connections,
    body: () => refreshBody(take()),
    onBody: (body) => {
      const token = rotatedToken(body);
      if (token) queue.push(token);
    },
  };
}

/** `body` for each account in turn: every request carries the next account's access token. */
export function spreadReadScenario(accounts: readonly Tokens[], body: string, connections: number): Scenario {
  const headers = accounts.map(({ accessToken }) => ({ authorization: `Bearer ${accessToken}` }));
  let next = 0;
  return {
    connections,
    body,
    headers: () => {
      const header = headers[next] ?? {};
      next = (next + 1) % headers.length;
      return header;
    },
  };
}
