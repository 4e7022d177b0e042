// Three real instances behind HAProxy on one MariaDB and one Redis, under steady load: one instance is SIGKILLed
// and restarted, then MariaDB is; requests fail only during their outage, nothing is half-written, every
// revocation holds on every instance, and the client SDK's revocation watch survives both.
import { Agent } from 'node:http';
import { performance } from 'node:perf_hooks';
import { createConnection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthClient, createAuthClient, type SignedOutEvent } from '../packages/client/src/index.ts';
import { type Exchange, type Fleet, type GraphqlPost, graphqlPoster, startFleet } from '../tools/fleet.ts';
import { errorCode, extensionsOf, graphqlClient, registerUser, revokeSession, signIn } from './support/graphql.ts';
import { serviceAvailable } from './support/services.ts';
import { eventually } from './support/subscriptions.ts';

const LOAD_USERS = 30;
const WATCHERS = 12;
const PASSWORD = 'correct horse battery';
const SIGNED_IN = 'accessToken refreshToken session { id }';
const LOGIN = `mutation($input: LoginInput!) { login(input: $input) { ${SIGNED_IN} } }`;
const REFRESH = `mutation($t: String!) { refresh(refreshToken: $t) { ${SIGNED_IN} } }`;
type SignedIn = { accessToken: string; refreshToken: string; session: { id: string } };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Outage {
  readonly from: number;
  /** When the part was back and the load balancer sent it traffic again. */
  to: number;
  /** The instance (HAProxy's i<port>) whose requests may fail; undefined: any request (the database). */
  readonly instance?: string;
}

interface Sent {
  readonly op: 'login' | 'me' | 'refresh' | 'logout';
  readonly exchange: Exchange;
  readonly sessionId?: string;
}

/** Whether an exchange failed: no GraphQL answer, or an error a well-behaved client could not have caused. */
function failed(exchange: Exchange): boolean {
  if (exchange.failure || exchange.status !== 200) return true;
  return (exchange.errors?.length ?? 0) > 0;
}

/** A sessionRevoked subscription over SSE (POST, Accept: text/event-stream) through `url`. */
async function sseThrough(url: string, token: string) {
  const controller = new AbortController();
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: 'subscription { sessionRevoked { sessionId reason } }' }),
    signal: controller.signal,
  });
  expect(response.headers.get('content-type')).toContain('text/event-stream');
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  let text = '';
  return {
    /** The event about `sessionId` (within 10 s); ends the stream. */
    async until(sessionId: string) {
      const timer = setTimeout(() => controller.abort(), 10_000);
      try {
        while (!text.includes(`"sessionId":"${sessionId}"`)) {
          const { value, done } = await reader.read();
          if (done) break;
          text += new TextDecoder().decode(value);
        }
      } catch {
        // Aborted: the event did not come.
      } finally {
        clearTimeout(timer);
        controller.abort();
      }
      const line = text.split('\n').find((l) => l.startsWith('data:') && l.includes(`"sessionId":"${sessionId}"`));
      return line ? (JSON.parse(line.slice(5)).data?.sessionRevoked as { reason: string }) : undefined;
    },
  };
}

describe.skipIf(!['mariadbd', 'redis-server', 'haproxy'].every((binary) => serviceAvailable(binary)))(
  'three instances behind HAProxy',
  () => {
    let fleet: Fleet;
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });

    beforeAll(async () => {
      fleet = await startFleet({
        env: {
          BCRYPT_COST: '4',
          // Every simulated user comes from 127.0.0.1: per-IP limits would measure the test, not the fleet.
          RATE_LIMIT_LOGIN_IP: '100000/1m',
          RATE_LIMIT_REGISTER_IP: '100000/1m',
          // A sign-in that fails because the database is down keeps its reserved attempt (attempts.ts: fail
          // closed), so five retries during the outage would lock the account for 15 minutes after it.
          RATE_LIMIT_LOGIN_ACCOUNT: '1000/15m',
        },
      });
    }, 120_000);

    afterAll(async () => {
      agent.destroy();
      await fleet?.stop();
    });

    /** graphql_ws_subscriptions_open on each instance, read from that instance directly (0 when it is down). */
    async function subscriptionsPerInstance(): Promise<number[]> {
      return Promise.all(
        fleet.instances.map(async (instance) => {
          try {
            const text = await (await fetch(`${instance.url}/metrics`)).text();
            return Number(/^graphql_ws_subscriptions_open (\d+)/m.exec(text)?.[1] ?? 0);
          } catch {
            return 0;
          }
        }),
      );
    }
    const total = (counts: number[]) => counts.reduce((a, b) => a + b, 0);

    it('survives an instance SIGKILL and a MariaDB restart under load, losing no write and no revocation', async () => {
      const lb = graphqlClient(fleet.url);
      const post: GraphqlPost = graphqlPoster(fleet.url, agent);

      // SDK clients watching their own session's revocation over WebSockets through HAProxy; each account has a
      // second session, from which their session is revoked later.
      const watchers = await Promise.all(
        Array.from({ length: WATCHERS }, async () => {
          const account = await registerUser(lb);
          const client: AuthClient = createAuthClient({
            url: `${fleet.url}/graphql`,
            wsUrl: `${fleet.url.replace(/^http/, 'ws')}/graphql`,
            webSocketImpl: WebSocket,
          });
          const signedOut = new Promise<SignedOutEvent>((resolve) => client.on('signedOut', resolve));
          await client.login({ email: account.user.email, password: PASSWORD });
          return { account, client, signedOut };
        }),
      );
      await eventually(async () => total(await subscriptionsPerInstance()) === WATCHERS, 15_000);

      // Steady load: each user signs in, then calls me and refreshes (sometimes the same token twice at once, as
      // two tabs would), and now and then logs out and signs in again.
      const users = await Promise.all(Array.from({ length: LOAD_USERS }, () => registerUser(lb)));
      const records: Sent[] = [];
      /** Sessions this test logged out, with an access token of each, to check on every instance at the end. */
      const loggedOut: { sessionId: string; accessToken: string }[] = [];
      /** Refreshes per session: answered with new tokens, and failed without an answer (may have committed). */
      const refreshes = new Map<string, { ok: number; unknown: number }>();
      /** Two refreshes of one token sent at once, both answered: exactly one may succeed. */
      const doubles: [Exchange<{ refresh: SignedIn }>, Exchange<{ refresh: SignedIn }>][] = [];
      let running = true;
      const simulate = async (email: string, index: number) => {
        let signedIn: SignedIn | undefined;
        for (let round = index; running; round++) {
          await sleep(50 + (round % 7) * 15);
          if (!signedIn) {
            const exchange = await post<{ login: SignedIn }>(LOGIN, { input: { email, password: PASSWORD } });
            records.push({ op: 'login', exchange });
            signedIn = exchange.data?.login ?? undefined;
            // As a client would: back off before trying again.
            if (!signedIn) await sleep(1000);
            continue;
          }
          const sessionId = signedIn.session.id;
          const me = await post('{ me { id } }', {}, signedIn.accessToken);
          records.push({ op: 'me', exchange: me, sessionId });
          if (round % 5 === 0) {
            const counts = refreshes.get(sessionId) ?? { ok: 0, unknown: 0 };
            refreshes.set(sessionId, counts);
            const twice = round % 15 === 0;
            const sent = await Promise.all(
              Array.from({ length: twice ? 2 : 1 }, () =>
                post<{ refresh: SignedIn }>(REFRESH, { t: signedIn?.refreshToken }),
              ),
            );
            for (const exchange of sent) records.push({ op: 'refresh', exchange, sessionId });
            if (twice && sent.every((e) => !e.failure && e.status === 200)) doubles.push(sent as never);
            const won = sent.find((e) => e.data?.refresh)?.data?.refresh;
            counts.ok += sent.filter((e) => e.data?.refresh).length;
            // No answer: the rotation may have committed with its new token lost. A client can only sign in again.
            const lost = sent.filter(
              (e) =>
                e.failure ||
                e.status !== 200 ||
                extensionsOf(e as never)?.code === 'INTERNAL_SERVER_ERROR' ||
                // A lone refresh told ROTATED: an instance that died spent the token (its rotation counts unseen).
                (!twice && extensionsOf(e as never)?.reason === 'REFRESH_TOKEN_ROTATED'),
            );
            // Two at once, neither rotating it, one or both told ROTATED: it was rotated unseen all the same (by an
            // instance that died after its commit, HAProxy passing the request on; or a commit whose answer the
            // database's restart lost, the retry then finding the token spent).
            const unseen =
              twice && !won && sent.some((e) => extensionsOf(e as never)?.reason === 'REFRESH_TOKEN_ROTATED') ? 1 : 0;
            counts.unknown += lost.length + unseen;
            // Without a new token (lost, or REFRESH_TOKEN_ROTATED: another request spent this one), sign in again.
            signedIn = lost.length > 0 ? undefined : won;
          } else if (round % 37 === 0) {
            const exchange = await post('mutation { logout }', {}, signedIn.accessToken);
            records.push({ op: 'logout', exchange, sessionId });
            if (exchange.data?.logout === true) loggedOut.push({ sessionId, accessToken: signedIn.accessToken });
            signedIn = undefined;
          }
        }
      };
      const load = Promise.all(users.map((user, index) => simulate(user.user.email, index)));
      const outages: Outage[] = [];
      const revokeWatchers = async (group: typeof watchers, via: number) => {
        // From each account's other session, on one instance directly: the event must cross to wherever the
        // watcher's socket is (through HAProxy, after reconnecting).
        const gql = graphqlClient(fleet.instances[via]?.url as string);
        for (const watcher of group) {
          const other = await signIn(gql, watcher.account.user.email, PASSWORD);
          const { sessionId, accessToken } = watcher.client.tokens as { sessionId: string; accessToken: string };
          const revoked = await revokeSession(gql, sessionId, other.accessToken);
          expect(revoked.data).toEqual({ revokeSession: true });
          loggedOut.push({ sessionId, accessToken });
        }
        const events = await Promise.all(
          group.map((watcher) =>
            Promise.race([watcher.signedOut, sleep(10_000).then(() => ({ reason: 'no event within 10 s' }))]),
          ),
        );
        expect(events.map((event) => event.reason)).toEqual(group.map(() => 'REVOKED_BY_USER'));
      };

      try {
        await sleep(3000);
        // The instance holding the most watchers' sockets dies without a chance to close anything.
        const before = await subscriptionsPerInstance();
        const victimIndex = before.indexOf(Math.max(...before));
        const victim = fleet.instances[victimIndex] as Fleet['instances'][number];
        expect(before[victimIndex]).toBeGreaterThan(0);
        const instanceOutage: Outage = { from: performance.now(), to: Infinity, instance: `i${victim.port}` };
        outages.push(instanceOutage);
        await victim.kill('SIGKILL');
        await sleep(2000);
        await victim.start();
        await fleet.balanced();
        instanceOutage.to = performance.now();
        await sleep(2000);

        // Every watcher is subscribed again (those of the dead instance through another one, or the new one).
        await eventually(async () => total(await subscriptionsPerInstance()) === WATCHERS, 30_000);
        await revokeWatchers(watchers.slice(0, WATCHERS / 2), (victimIndex + 1) % fleet.instances.length);

        // MariaDB crashes and comes back on the same data.
        const databaseOutage: Outage = { from: performance.now(), to: Infinity };
        outages.push(databaseOutage);
        await fleet.mariadb.kill?.('SIGKILL');
        await sleep(2000);
        await fleet.mariadb.start?.();
        await eventually(async () => {
          const states = await Promise.all(fleet.instances.map((i) => fetch(`${i.url}/readyz`).then((r) => r.status)));
          return states.every((status) => status === 200);
        }, 30_000);
        await fleet.balanced();
        databaseOutage.to = performance.now();
        await sleep(3000);
        await eventually(async () => total(await subscriptionsPerInstance()) === WATCHERS / 2, 30_000);
        // An SSE subscriber through HAProxy too: a third session of one of the accounts about to be revoked.
        const heard = watchers[WATCHERS / 2] as (typeof watchers)[number];
        const heardSession = heard.client.tokens?.sessionId as string;
        const sse = await sseThrough(fleet.url, (await signIn(lb, heard.account.user.email, PASSWORD)).accessToken);
        await revokeWatchers(watchers.slice(WATCHERS / 2), victimIndex);
        expect(await sse.until(heardSession)).toMatchObject({
          reason: 'REVOKED_BY_USER',
        });
      } finally {
        running = false;
        await load;
        for (const watcher of watchers) await watcher.client.dispose();
      }

      // 1. Requests failed only while their instance, or the database, was down (plus the second of a pair of
      //    refreshes of one token, which must lose).
      const loser = new Set<Exchange>(doubles.map(([a, b]) => (a.data?.refresh ? b : a)));
      // A refresh answered REFRESH_TOKEN_ROTATED while an instance died may have been spent by the dead instance
      // (it rotated, then was killed before answering) and the request passed on to another one (HAProxy retries
      // on an empty response): the token is lost with the instance, as an unanswered refresh's is, and the client
      // signs in again. Likewise a logout answered SESSION_REVOKED: the dead instance had ended the session.
      const logouts = new Set(records.filter((r) => r.op === 'logout').map((r) => r.exchange));
      const spentByTheDead = (exchange: Exchange) => {
        const reason = extensionsOf(exchange as never)?.reason;
        return reason === 'REFRESH_TOKEN_ROTATED' || (reason === 'SESSION_REVOKED' && logouts.has(exchange));
      };
      const during = (exchange: Exchange, outage: Outage) =>
        exchange.end >= outage.from &&
        exchange.start <= outage.to &&
        (outage.instance === undefined ||
          exchange.servedBy === outage.instance ||
          exchange.status === 0 ||
          spentByTheDead(exchange));
      const unexpected = records.filter(
        ({ exchange }) =>
          failed(exchange) && !loser.has(exchange) && !outages.some((outage) => during(exchange, outage)),
      );
      expect(
        unexpected.map(({ op, exchange }) => {
          const error = exchange.errors?.[0]?.extensions;
          const at = outages.map((o) => `${Math.round(exchange.start - o.from)}..${Math.round(exchange.end - o.to)}`);
          return `${op} ${exchange.status} ${exchange.servedBy} ${exchange.failure ?? `${error?.code} ${error?.reason}`} ${at}`;
        }),
      ).toEqual([]);
      // The database outage was real: requests did fail during it (and so the rule above is not empty).
      expect(records.some(({ exchange }) => failed(exchange) && during(exchange, outages[1] as Outage))).toBe(true);
      // The load really ran through both outages and after them, on every instance including the restarted one.
      const after = records.filter(
        ({ exchange }) => exchange.start > (outages[1]?.to ?? Infinity) && !failed(exchange),
      );
      for (const op of ['login', 'me', 'refresh'] as const) expect(after.some((r) => r.op === op)).toBe(true);
      for (const instance of fleet.instances) {
        expect(after.some((r) => r.exchange.servedBy === `i${instance.port}`)).toBe(true);
      }
      expect(records.filter((r) => r.op === 'logout' && !failed(r.exchange)).length).toBeGreaterThan(0);

      // 2. Of two refreshes of one token at once (on different instances), exactly one rotated it.
      const calmDoubles = doubles.filter((pair) => !pair.some((e) => outages.some((outage) => during(e, outage))));
      expect(calmDoubles.length).toBeGreaterThan(0);
      for (const [a, b] of calmDoubles) {
        const outcomes = [a, b].map((e) =>
          e.data?.refresh ? 'rotated' : (e.errors?.[0]?.extensions?.reason ?? 'other'),
        );
        expect(outcomes.sort()).toEqual(['REFRESH_TOKEN_ROTATED', 'rotated']);
      }

      // 3. Nothing half-written: every rotation has its audit row and every audit row its rotation; the answers
      //    the load got never exceed the rotations stored; every revoked session has its revocation's audit row.
      const db = await createConnection(fleet.databaseUrl);
      try {
        const [generations] = (await db.query(
          `SELECT s.id, s.refresh_generation AS generation,
             (SELECT COUNT(*) FROM audit_events a WHERE a.session_id = s.id AND a.type = 'TOKEN_REFRESHED') AS audited
           FROM sessions s`,
        )) as unknown as [{ id: string; generation: number; audited: number }[]];
        expect(generations.filter((row) => Number(row.audited) !== row.generation)).toEqual([]);
        const stored = new Map(generations.map((row) => [row.id, row.generation]));
        const miscounted = [...refreshes]
          .map(([sessionId, counts]) => ({ sessionId, ...counts, stored: stored.get(sessionId) ?? -1 }))
          .filter((row) => row.ok > row.stored || row.stored > row.ok + row.unknown);
        expect(miscounted).toEqual([]);
        const [unaudited] = (await db.query(
          `SELECT s.id FROM sessions s WHERE s.revoked_at IS NOT NULL AND NOT EXISTS
             (SELECT 1 FROM audit_events a WHERE a.session_id = s.id AND a.type = 'SESSION_REVOKED')`,
        )) as unknown as [{ id: string }[]];
        expect(unaudited).toEqual([]);
        const [revoked] = (await db.query(
          'SELECT id, revoked_reason AS reason FROM sessions WHERE revoked_at IS NOT NULL',
        )) as unknown as [{ id: string; reason: string }[]];
        const reasons = new Map(revoked.map((row) => [row.id, row.reason]));
        for (const { sessionId } of loggedOut) expect(reasons.has(sessionId)).toBe(true);
      } finally {
        await db.end();
      }

      // 4. Every revocation is enforced on every instance, asked directly (the restarted one included).
      expect(loggedOut.length).toBeGreaterThan(WATCHERS);
      for (const instance of fleet.instances) {
        const gql = graphqlClient(instance.url);
        const answers = await Promise.all(
          loggedOut.map(({ accessToken }) => gql('{ me { id } }', {}, { token: accessToken })),
        );
        expect(new Set(answers.map((answer) => `${errorCode(answer)} ${extensionsOf(answer)?.reason}`))).toEqual(
          new Set(['UNAUTHENTICATED SESSION_REVOKED']),
        );
      }
    }, 240_000);
  },
);
