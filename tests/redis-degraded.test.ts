// Redis down is degraded, not dead: two instances (real processes) on MariaDB sharing a Redis that the test
// kills. Both stay ready ("degraded") and serve; a session revoked on one is refused on the other, and the other's
// subscribers told, while Redis is still down (read from the database); after Redis returns, the bus carries
// revocations again; only without the database does /readyz answer 503.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ed25519Pem } from './support/expect.ts';
import {
  errorCode,
  type Gql,
  graphqlClient,
  loginUser,
  me,
  type Payload,
  registerUser,
  revokeSession,
} from './support/graphql.ts';
import { scrapeMetrics } from './support/metrics.ts';
import { type ServiceProcess, startServiceProcess } from './support/processes.ts';
import { createDatabase, type RunningService, serviceAvailable, startMariaDb, startRedis } from './support/services.ts';
import { eventually, type Subscription, subscribe } from './support/subscriptions.ts';

const SUBSCRIPTION = 'subscription { sessionRevoked { sessionId reason } }';
type Event = { sessionRevoked: { sessionId: string; reason: string } };

const readiness = async (url: string) => {
  const response = await fetch(`${url}/readyz`);
  return { status: response.status, body: await response.json() };
};

describe.skipIf(!serviceAvailable('redis-server') || !serviceAvailable('mariadbd'))(
  'two instances on MariaDB while Redis is down',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'auth-degraded-'));
    let mariadb: RunningService;
    let redis: RunningService;
    let a: ServiceProcess;
    let b: ServiceProcess;
    let gqlA: Gql;
    let gqlB: Gql;
    const subscriptions: Subscription<Event>[] = [];

    beforeAll(async () => {
      [mariadb, redis] = await Promise.all([startMariaDb(), startRedis()]);
      const env = {
        DATABASE_URL: await createDatabase(mariadb, 'degraded'),
        REDIS_URL: redis.url,
        JWT_PRIVATE_KEY: ed25519Pem(),
        BCRYPT_COST: '4',
        DATA_DIR: dir,
        ISSUER: 'https://auth.test',
        AUDIENCE: 'https://api.test',
      };
      [a, b] = await Promise.all([startServiceProcess(env, 60_000), startServiceProcess(env, 60_000)]);
      gqlA = graphqlClient(a.url);
      gqlB = graphqlClient(b.url);
    });

    afterAll(async () => {
      await Promise.all(subscriptions.map((s) => s.dispose()));
      await Promise.all([a?.stop(), b?.stop()]);
      await Promise.all([redis?.stop(), mariadb?.stop()]);
      rmSync(dir, { recursive: true, force: true });
    });

    /** An account signed in twice: its first session watches (on B), the second is the one to revoke. */
    async function watchedVictim() {
      const watcher = await registerUser(gqlA);
      const victim = (await loginUser(gqlB, watcher.user.email, watcher.password)).data?.login as Payload;
      expect((await me(gqlB, victim.accessToken)).data?.me).toEqual({ id: watcher.user.id });
      const subscription = subscribe<Event>(b.url, SUBSCRIPTION, watcher.accessToken);
      subscriptions.push(subscription);
      // The subscription is registered on B once the server has answered a first operation on the socket; a
      // short pause is enough here, as the event is awaited (not a timing assertion).
      await new Promise((resolve) => setTimeout(resolve, 300));
      return { watcher, victim, subscription };
    }

    async function revokeOnA(watcher: Payload, sessionId: string) {
      const revoked = await revokeSession(gqlA, sessionId, watcher.accessToken);
      expect([revoked.errors, revoked.data]).toEqual([undefined, { revokeSession: true }]);
    }

    it('is ready and reports Redis up while it is', async () => {
      for (const instance of [a, b]) {
        expect(await readiness(instance.url)).toEqual({ status: 200, body: { status: 'ok' } });
        expect((await scrapeMetrics(instance.url)).value('auth_redis_up')).toBe(1);
      }
    });

    it('stays ready (degraded), serves, and carries revocations through the database while Redis is down', async () => {
      const { watcher, victim, subscription } = await watchedVictim();

      await redis.kill?.();
      for (const instance of [a, b]) {
        await eventually(async () => (await readiness(instance.url)).body.status === 'degraded', 15_000);
        expect(await readiness(instance.url)).toEqual({ status: 200, body: { status: 'degraded', down: ['redis'] } });
        expect((await scrapeMetrics(instance.url)).value('auth_redis_up')).toBe(0);
      }

      // Still serving: reads and sign-in (rate limits count in memory meanwhile).
      expect((await me(gqlA, watcher.accessToken)).data?.me).toEqual({ id: watcher.user.id });
      const fresh = await loginUser(gqlB, watcher.user.email, watcher.password);
      expect(fresh.errors).toBeUndefined();

      // Revoked on A while Redis is still down: B reads it from the database, refuses the token, tells its subscriber.
      await revokeOnA(watcher, victim.session.id);
      await eventually(async () => errorCode(await me(gqlB, victim.accessToken)) === 'UNAUTHENTICATED', 10_000);
      expect((await subscription.next(1, 10_000)).sessionRevoked).toEqual({
        sessionId: victim.session.id,
        reason: 'REVOKED_BY_USER',
      });
      // Redis stayed down all along: the polling, not a reconnection, carried it.
      expect((await readiness(b.url)).body).toEqual({ status: 'degraded', down: ['redis'] });
    });

    it('is ok again once Redis is back, and revocations still travel', async () => {
      await redis.start?.();
      for (const instance of [a, b]) {
        await eventually(async () => (await readiness(instance.url)).body.status === 'ok', 15_000);
        expect(await readiness(instance.url)).toEqual({ status: 200, body: { status: 'ok' } });
        expect((await scrapeMetrics(instance.url)).value('auth_redis_up')).toBe(1);
      }

      const { watcher, victim, subscription } = await watchedVictim();
      await revokeOnA(watcher, victim.session.id);
      expect((await subscription.next(1, 10_000)).sessionRevoked).toEqual({
        sessionId: victim.session.id,
        reason: 'REVOKED_BY_USER',
      });
      expect(errorCode(await me(gqlB, victim.accessToken))).toBe('UNAUTHENTICATED');
    });

    it('answers 503 only without the database', async () => {
      await mariadb.kill?.();
      for (const instance of [a, b]) {
        await eventually(async () => (await readiness(instance.url)).status === 503, 15_000);
        expect(await readiness(instance.url)).toEqual({ status: 503, body: { status: 'down', down: ['database'] } });
      }
    });
  },
);
