// Redis through Sentinel (REDIS_SENTINELS, REDIS_SENTINEL_NAME): a real master, a replica and three sentinels
// (Debian's redis-sentinel), two instances (real processes). The master is killed while revocations are being
// made; after the failover every revocation made before, during and after it is enforced on both instances, and
// the bus carries new ones again, without restarting anything.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseUrl, dialects } from './support/app.ts';
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
import { type ServiceProcess, startServiceProcess } from './support/processes.ts';
import { type RedisSentinelSet, serviceAvailable, startRedisSentinelSet } from './support/services.ts';
import { eventually, subscribe } from './support/subscriptions.ts';

const SUBSCRIPTION = 'subscription { sessionRevoked { sessionId reason } }';
type Event = { sessionRevoked: { sessionId: string; reason: string } };
const VICTIMS = 24;

const ready = async (url: string) => (await (await fetch(`${url}/readyz`)).json()) as { status: string };

describe.skipIf(!serviceAvailable('redis-server') || !serviceAvailable('redis-sentinel'))(
  'two instances on Redis Sentinel through a failover',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'auth-sentinel-'));
    let set: RedisSentinelSet;
    let a: ServiceProcess;
    let b: ServiceProcess;
    let gqls: [Gql, Gql];

    beforeAll(async () => {
      set = await startRedisSentinelSet();
      const env = {
        DATABASE_URL: await databaseUrl(dialects().includes('mysql') ? 'mysql' : 'sqlite', dir),
        REDIS_SENTINELS: set.sentinels,
        REDIS_SENTINEL_NAME: set.name,
        JWT_PRIVATE_KEY: ed25519Pem(),
        BCRYPT_COST: '4',
        DATA_DIR: dir,
        ISSUER: 'https://auth.test',
        AUDIENCE: 'https://api.test',
      };
      [a, b] = await Promise.all([startServiceProcess(env, 60_000), startServiceProcess(env, 60_000)]);
      gqls = [graphqlClient(a.url), graphqlClient(b.url)];
    });

    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await set?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('enforces on both instances every revocation made before, during and after a failover', async () => {
      for (const instance of [a, b]) expect(await ready(instance.url)).toEqual({ status: 'ok' });
      const [gqlA, gqlB] = gqls;
      const owner = await registerUser(gqlA);
      const sessions: Payload[] = [];
      for (let i = 0; i < VICTIMS + 1; i++) {
        sessions.push((await loginUser(gqls[i % 2] as Gql, owner.user.email, owner.password)).data?.login as Payload);
      }
      const control = sessions.pop() as Payload;

      // Revocations one after the other, alternating instances; the master dies after the first third.
      const oldMaster = await set.masterPort();
      let made = 0;
      const results: unknown[] = [];
      const killer = (async () => {
        await eventually(() => made >= VICTIMS / 3, 30_000);
        await set.killMaster();
      })();
      for (const [i, session] of sessions.entries()) {
        const revoked = await revokeSession(gqls[i % 2] as Gql, session.session.id, owner.accessToken);
        results.push([revoked.errors, revoked.data]);
        made++;
        // Spread over the failover (a pause between requests, not a timing assertion).
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
      await killer;
      // Every revocation was accepted: the database holds them whatever Redis was doing.
      expect(results).toEqual(sessions.map(() => [undefined, { revokeSession: true }]));

      // The sentinels promote the replica; both instances follow it without a restart.
      await eventually(async () => (await set.masterPort()) !== oldMaster, 30_000);
      for (const instance of [a, b]) await eventually(async () => (await ready(instance.url)).status === 'ok', 30_000);

      for (const session of sessions) {
        for (const gql of gqls) {
          await eventually(async () => errorCode(await me(gql, session.accessToken)) === 'UNAUTHENTICATED', 10_000);
        }
      }
      for (const gql of gqls) expect((await me(gql, control.accessToken)).data?.me).toEqual({ id: owner.user.id });

      // After the failover the bus (on the new master) carries a revocation from A to B's subscriber.
      const subscription = subscribe<Event>(b.url, SUBSCRIPTION, owner.accessToken);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const revoked = await revokeSession(gqlA, control.session.id, owner.accessToken);
      expect([revoked.errors, revoked.data]).toEqual([undefined, { revokeSession: true }]);
      expect((await subscription.next(1, 10_000)).sessionRevoked).toEqual({
        sessionId: control.session.id,
        reason: 'REVOKED_BY_USER',
      });
      expect(errorCode(await me(gqlB, control.accessToken))).toBe('UNAUTHENTICATED');
      await subscription.dispose();
    }, 180_000);
  },
);
