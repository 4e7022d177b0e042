// A Redis outage seen by one instance only (its connections cut, the other's fine, as when Redis returns and
// the instances reconnect one after another): a revocation made on the cut-off instance cannot be published
// then, and the other instance, whose bus never went down, neither polls the database nor reloads. The
// revocation must still reach it once the first instance is connected again. SQLite and MariaDB.
import { createServer, type Server, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { ed25519Pem } from './support/expect.ts';
import { errorCode, loginUser, me, type Payload, registerUser, revokeSession } from './support/graphql.ts';
import { type RunningService, serviceAvailable, servicesRequired, startRedis } from './support/services.ts';
import { eventually, type Subscription, subscribe } from './support/subscriptions.ts';

const SUBSCRIPTION = 'subscription { sessionRevoked { sessionId reason } }';
type Event = { sessionRevoked: { sessionId: string; reason: string } };

/** A TCP relay to Redis that the test can cut (every connection dropped, new ones refused) and restore. */
async function relay(targetPort: number) {
  const sockets = new Set<Socket>();
  let open = true;
  const server: Server = createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = new Socket();
    upstream.connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    cut() {
      open = false;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      open = true;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.skipIf(!serviceAvailable('redis-server') && !servicesRequired)('Redis lost by one instance only', () => {
  let redis: RunningService;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  describe.each(dialects())('%s', (dialect) => {
    let a: TestApp;
    let b: TestApp;
    let cutA: Awaited<ReturnType<typeof relay>>;
    let cutB: Awaited<ReturnType<typeof relay>>;
    const subscriptions: Subscription<Event>[] = [];

    beforeAll(async () => {
      cutA = await relay(Number(new URL(redis.url).port));
      cutB = await relay(Number(new URL(redis.url).port));
      const key = ed25519Pem();
      a = await startTestApp({ dialect, env: { REDIS_URL: cutA.url, JWT_PRIVATE_KEY: key } });
      b = await startTestApp({ databaseUrl: a.databaseUrl, env: { REDIS_URL: cutB.url, JWT_PRIVATE_KEY: key } });
    });
    afterAll(async () => {
      await Promise.all(subscriptions.map((s) => s.dispose()));
      await b?.close();
      await a?.close();
      await cutA?.close();
      await cutB?.close();
    });

    it('a revocation made while only its instance had lost Redis is enforced on the other once it reconnects', async () => {
      const watcher = await registerUser(a.gql);
      const victim = (await loginUser(b.gql, watcher.user.email, watcher.password)).data?.login as Payload;
      expect((await me(b.gql, victim.accessToken)).data?.me).toEqual({ id: watcher.user.id });
      const subscription = subscribe<Event>(b.url, SUBSCRIPTION, watcher.accessToken);
      subscriptions.push(subscription);
      // Registered on B once the socket has answered; the event itself is awaited below.
      await new Promise((resolve) => setTimeout(resolve, 300));

      cutA.cut();
      await eventually(() => a.app.redis?.up === false && !a.app.bus.live());
      // B never lost Redis: its bus is live, so it neither polls the database nor reloads.
      expect([b.app.redis?.up, b.app.bus.live()]).toEqual([true, true]);
      const revoked = await revokeSession(a.gql, victim.session.id, watcher.accessToken);
      expect([revoked.errors, revoked.data]).toEqual([undefined, { revokeSession: true }]);
      // A itself refuses it at once.
      expect(errorCode(await me(a.gql, victim.accessToken))).toBe('UNAUTHENTICATED');

      cutA.restore();
      await eventually(() => a.app.redis?.up === true && a.app.bus.live(), 15_000);
      const event = await subscription.next(1);
      expect(event.sessionRevoked).toEqual({ sessionId: victim.session.id, reason: 'REVOKED_BY_USER' });
      expect(errorCode(await me(b.gql, victim.accessToken))).toBe('UNAUTHENTICATED');
    }, 40_000);

    it('during an outage of both, a revocation is heard once on the other: from the database, not again when republished', async () => {
      const watcher = await registerUser(a.gql);
      const victim = (await loginUser(b.gql, watcher.user.email, watcher.password)).data?.login as Payload;
      const marker = (await loginUser(b.gql, watcher.user.email, watcher.password)).data?.login as Payload;
      const subscription = subscribe<Event>(b.url, SUBSCRIPTION, watcher.accessToken);
      subscriptions.push(subscription);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const revoke = async (sessionId: string) => {
        const revoked = await revokeSession(a.gql, sessionId, watcher.accessToken);
        expect([revoked.errors, revoked.data]).toEqual([undefined, { revokeSession: true }]);
      };

      cutA.cut();
      cutB.cut();
      await eventually(() => !a.app.bus.live() && !b.app.bus.live());
      await revoke(victim.session.id);
      // B reads it from the database while its bus is down.
      expect((await subscription.next(1)).sessionRevoked).toEqual({
        sessionId: victim.session.id,
        reason: 'REVOKED_BY_USER',
      });
      expect(errorCode(await me(b.gql, victim.accessToken))).toBe('UNAUTHENTICATED');

      cutA.restore();
      cutB.restore();
      await eventually(() => a.app.bus.live() && b.app.bus.live() && a.app.redis?.up === true, 15_000);
      // A republished the first one on reconnecting, before this one: B's next event is this one.
      await revoke(marker.session.id);
      expect((await subscription.next(2)).sessionRevoked).toEqual({
        sessionId: marker.session.id,
        reason: 'REVOKED_BY_USER',
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(subscription.events.length).toBe(2);
    }, 40_000);
  });
});
