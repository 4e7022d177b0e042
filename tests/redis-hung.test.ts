// Redis that stops answering without closing its connections (a hung process, a network black hole; here
// SIGSTOP): unlike a Redis that is gone, the sockets stay open and nothing tells the instances. They must notice
// (heartbeat), serve on, and read revocations from the database as in any outage. SQLite and MariaDB.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { ed25519Pem } from './support/expect.ts';
import { errorCode, loginUser, me, type Payload, registerUser, revokeSession } from './support/graphql.ts';
import { type RunningService, serviceAvailable, servicesRequired, startRedis } from './support/services.ts';
import { eventually } from './support/subscriptions.ts';

describe.skipIf(!serviceAvailable('redis-server') && !servicesRequired)('Redis hung', () => {
  let redis: RunningService;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    try {
      process.kill(redis.pid, 'SIGCONT');
    } catch {}
    await redis?.stop();
  });

  describe.each(dialects())('%s', (dialect) => {
    let a: TestApp;
    let b: TestApp;
    beforeAll(async () => {
      const key = ed25519Pem();
      a = await startTestApp({ dialect, env: { REDIS_URL: redis.url, JWT_PRIVATE_KEY: key } });
      b = await startTestApp({ databaseUrl: a.databaseUrl, env: { REDIS_URL: redis.url, JWT_PRIVATE_KEY: key } });
    });
    afterAll(async () => {
      process.kill(redis.pid, 'SIGCONT');
      await b?.close();
      await a?.close();
    });

    it('a hung Redis is detected: sign-in and revocation answer, and the revocation is refused on the other instance, while Redis still hangs', async () => {
      const watcher = await registerUser(a.gql);
      const victim = (await loginUser(b.gql, watcher.user.email, watcher.password)).data?.login as Payload;
      expect((await me(b.gql, victim.accessToken)).data?.me).toEqual({ id: watcher.user.id });

      process.kill(redis.pid, 'SIGSTOP');
      try {
        // Both answer although Redis never will (before: each waited for as long as Redis hung).
        const signedIn = await loginUser(a.gql, watcher.user.email, watcher.password);
        expect([signedIn.errors, typeof signedIn.data?.login?.accessToken]).toEqual([undefined, 'string']);
        const revoked = await revokeSession(a.gql, victim.session.id, watcher.accessToken);
        expect([revoked.errors, revoked.data]).toEqual([undefined, { revokeSession: true }]);
        // B no longer counts its bus as live, reads the database, and refuses the token (before: accepted).
        await eventually(async () => errorCode(await me(b.gql, victim.accessToken)) === 'UNAUTHENTICATED', 10_000);
        // Each instance notices on its own heartbeat.
        await eventually(() => !a.app.bus.live() && !b.app.bus.live() && !a.app.redis?.up && !b.app.redis?.up, 10_000);
        const ready = await fetch(`${b.url}/readyz`);
        expect([ready.status, await ready.json()]).toEqual([200, { status: 'degraded', down: ['redis'] }]);
      } finally {
        process.kill(redis.pid, 'SIGCONT');
      }

      // Once Redis answers again the bus carries revocations again.
      await eventually(() => a.app.bus.live() && b.app.bus.live() && a.app.redis?.up === true, 15_000);
      const other = (await loginUser(b.gql, watcher.user.email, watcher.password)).data?.login as Payload;
      const again = await revokeSession(a.gql, other.session.id, watcher.accessToken);
      expect(again.data).toEqual({ revokeSession: true });
      await eventually(async () => errorCode(await me(b.gql, other.accessToken)) === 'UNAUTHENTICATED');
    }, 60_000);
  });
});
