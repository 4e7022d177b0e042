// Attacks on "a change's answer waits until every instance has applied it" (tests/bus-confirmation.test.ts): an
// instance whose subscription Redis dropped while the instance had not yet read the socket (a frozen or starved
// process; Sentinel's CLIENT KILL on failover, Redis's output-buffer limit on a slow subscriber) is not counted by
// PUBLISH, yet believes itself subscribed until it reads the socket or its heartbeat fails; a publisher whose own
// subscription came back must hear confirmations again; malformed confirmations and messages are ignored.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUS_CONFIRMATION_TIMEOUT_MS, confirmationChannel, REVOCATION_CHANNEL } from '../src/events/redis.ts';
import { dialects, type TestApp } from './support/app.ts';
import {
  holdSubscription,
  type InstancePair,
  startInstancePair,
  UNCONFIRMED_WARNING,
  withSubscriptionHeld,
} from './support/bus.ts';
import { me, registerUser } from './support/graphql.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';

const UPDATE_PROFILE = 'mutation($name: String) { updateProfile(input: { displayName: $name }) { id displayName } }';

describe.skipIf(!serviceAvailable('redis-server'))('bus confirmations under attack', () => {
  describe.each(dialects())('on %s', (dialect) => {
    let redis: RunningService;
    let admin: Redis;
    let pair: InstancePair;
    let a: TestApp;
    let b: TestApp;
    let warnings: string[];

    beforeAll(async () => {
      redis = await startRedis();
      admin = new Redis(redis.url, { lazyConnect: true });
      await admin.connect();
      pair = await startInstancePair(dialect, redis.url);
      ({ a, b, warnings } = pair);
    });

    afterAll(async () => {
      admin?.disconnect();
      await pair?.close();
      await redis?.stop();
    });

    /** Has Redis drop the connection from local `port` (as CLIENT KILL from Sentinel or an operator does). */
    const killClient = (port: number | undefined) =>
      admin.call('CLIENT', 'KILL', 'ADDR', `127.0.0.1:${port}`, 'SKIPME', 'yes');

    /** Until `check` holds (polling): for what an instance does in the background. */
    async function until(check: () => boolean, what: string): Promise<void> {
      for (let i = 0; i < 200; i++) {
        if (check()) return;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      throw new Error(`timed out waiting for ${what}`);
    }

    it("B's held subscription killed by Redis just before a change on A: B's next read still shows the change", async () => {
      const user = await registerUser(a.gql, { displayName: 'Before' });
      const name = async () => (await me<{ displayName: string }>(b.gql, user.accessToken, 'displayName')).data?.me;
      expect(await name()).toEqual({ displayName: 'Before' });
      for (const round of [1, 2]) {
        await until(() => b.app.bus.live(), 'B to be subscribed');
        const subscriber = b.app.redis?.subscriber.stream;
        const port = subscriber && 'localPort' in subscriber ? subscriber.localPort : undefined;
        expect(port).toBeTypeOf('number');
        const release = holdSubscription(b.app);
        let answer: Awaited<ReturnType<typeof a.gql>>;
        let nextOnB: Awaited<ReturnType<typeof name>>;
        try {
          expect(await killClient(port)).toBe(1);
          answer = await a.gql(UPDATE_PROFILE, { name: `After ${round}` }, { token: user.accessToken });
          nextOnB = await name();
        } finally {
          release();
        }
        expect(answer.data).toEqual({ updateProfile: { id: user.user.id, displayName: `After ${round}` } });
        expect(nextOnB).toEqual({ displayName: `After ${round}` });
      }
    });

    /** The port of `app`'s subscription connection (how Redis's CLIENT LIST names it). */
    const subscriberPort = (app: TestApp) => {
      const socket = app.app.redis?.subscriber.stream;
      return socket && 'localPort' in socket ? socket.localPort : undefined;
    };

    /**
     * A change on A with B's subscription held until a third of the confirmation bound: whether A answered only
     * after B was let go, and B's next read.
     */
    async function changeWithBHeld(token: string, displayName: string) {
      const { answer, nextAnswer, answeredAfterLetGo } = await withSubscriptionHeld(
        b.app,
        BUS_CONFIRMATION_TIMEOUT_MS / 3,
        () => a.gql(UPDATE_PROFILE, { name: displayName }, { token }),
        async () => (await me<{ displayName: string }>(b.gql, token, 'displayName')).data?.me,
      );
      return { answer, answeredAfterLetGo, nextOnB: nextAnswer };
    }

    it("A's own subscription killed and back: A's confirmation channel is subscribed again, and A waits for B", async () => {
      await until(() => a.app.bus.live() && b.app.bus.live(), 'both instances to be subscribed');
      const user = await registerUser(a.gql, { displayName: 'Before' });
      expect((await me(b.gql, user.accessToken, 'displayName')).data?.me).toEqual({ displayName: 'Before' });
      const channels = async () => ((await admin.pubsub('CHANNELS', confirmationChannel('*'))) as string[]).sort();
      const before = await channels();
      expect(before).toHaveLength(2);
      const port = subscriberPort(a);
      expect(await killClient(port)).toBe(1);
      await until(() => subscriberPort(a) !== port && a.app.bus.live(), 'A to be subscribed again');
      expect(await channels()).toEqual(before);
      const counts = (await admin.pubsub('NUMSUB', ...before)) as (string | number)[];
      expect(counts.filter((_, index) => index % 2 === 1).map(Number)).toEqual([1, 1]);
      const { answer, answeredAfterLetGo, nextOnB } = await changeWithBHeld(user.accessToken, 'After');
      expect(answer.data).toEqual({ updateProfile: { id: user.user.id, displayName: 'After' } });
      expect(answeredAfterLetGo).toBe(true);
      expect(nextOnB).toEqual({ displayName: 'After' });
    });

    it('a receiver gone while A waits (killed after the publish counted it) and a pattern subscriber are not waited for', async () => {
      await until(() => a.app.bus.live() && b.app.bus.live(), 'both instances to be subscribed');
      const user = await registerUser(a.gql, { displayName: 'Before' });
      expect((await me(b.gql, user.accessToken, 'displayName')).data?.me).toEqual({ displayName: 'Before' });
      // A pattern subscriber (a debugging `PSUBSCRIBE auth:*`): PUBLISH counts it, it never confirms. Here it also
      // tells the test when A has published.
      const spy = new Redis(redis.url, { lazyConnect: true });
      await spy.connect();
      const published = new Promise<void>((resolve) => {
        spy.on('pmessage', (_pattern: string, _channel: string, message: string) => {
          if (message.includes(user.user.id)) resolve();
        });
      });
      await spy.psubscribe(`${REVOCATION_CHANNEL}*`);
      const port = subscriberPort(b);
      const release = holdSubscription(b.app);
      try {
        warnings.length = 0;
        const change = a.gql(UPDATE_PROFILE, { name: 'After' }, { token: user.accessToken });
        await published;
        // B, counted by that PUBLISH, is gone before it could confirm.
        expect(await killClient(port)).toBe(1);
        expect((await change).data).toEqual({ updateProfile: { id: user.user.id, displayName: 'After' } });
        // A stopped waiting because B had gone, not because the bound ran out.
        expect(warnings.filter((line) => line.includes(UNCONFIRMED_WARNING))).toEqual([]);
      } finally {
        release();
        spy.disconnect();
      }
      await until(() => b.app.bus.live(), 'B to be subscribed again');
      expect((await me(b.gql, user.accessToken, 'displayName')).data?.me).toEqual({ displayName: 'After' });
    });

    it('an instance that confirms and then leaves does not stand in for one still applying the message', async () => {
      await until(() => a.app.bus.live() && b.app.bus.live(), 'both instances to be subscribed');
      const user = await registerUser(a.gql, { displayName: 'Before' });
      const name = async () => (await me<{ displayName: string }>(b.gql, user.accessToken, 'displayName')).data?.me;
      expect(await name()).toEqual({ displayName: 'Before' });
      // A third instance, as it is on the wire: subscribed to the bus and to a confirmation channel of its own in
      // one SUBSCRIBE, it confirms A's message as an instance does, then is gone (scaled in, killed) while B,
      // held, has not applied it yet. The two confirmations A has (its own, the third's) equal the instances
      // still subscribed (A, B): only matching them by instance tells that B's is missing.
      const third = randomUUID();
      const leaver = new Redis(redis.url, { lazyConnect: true });
      const confirmer = new Redis(redis.url, { lazyConnect: true });
      await Promise.all([leaver.connect(), confirmer.connect()]);
      let confirmed = false;
      const left = new Promise<void>((resolve) => {
        leaver.on('message', (channel: string, message: string) => {
          if (channel !== REVOCATION_CHANNEL || !message.includes(user.user.id)) return;
          const { from, id } = JSON.parse(message) as { from: string; id: string };
          void confirmer.publish(confirmationChannel(from), `${id} ${third}`).then(() => {
            confirmed = true;
            leaver.disconnect();
            resolve();
          });
        });
      });
      const held = await leaver
        .subscribe(REVOCATION_CHANNEL, confirmationChannel(third))
        .then(() =>
          withSubscriptionHeld(
            b.app,
            BUS_CONFIRMATION_TIMEOUT_MS / 3,
            async () => {
              const answer = a.gql(UPDATE_PROFILE, { name: 'After' }, { token: user.accessToken });
              await left;
              return answer;
            },
            name,
          ),
        )
        .finally(() => {
          leaver.disconnect();
          confirmer.disconnect();
        });
      expect(confirmed).toBe(true);
      expect(held.answer.data).toEqual({ updateProfile: { id: user.user.id, displayName: 'After' } });
      expect(held.answeredAfterLetGo).toBe(true);
      expect(held.nextAnswer).toEqual({ displayName: 'After' });
    });

    it('a Redis user not allowed PUBSUB: changes are still published, and wait for every receiver', async () => {
      await admin.call('ACL', 'SETUSER', 'limited', 'on', '>limited-secret', '~*', '&*', '+@all', '-pubsub|channels');
      const limitedUrl = redis.url.replace('redis://', 'redis://limited:limited-secret@');
      const limited = await startInstancePair(dialect, limitedUrl);
      const { a: c, b: d } = limited;
      try {
        await until(() => c.app.bus.live() && d.app.bus.live(), 'both instances to be subscribed');
        const user = await registerUser(c.gql, { displayName: 'Before' });
        const name = async () => (await me<{ displayName: string }>(d.gql, user.accessToken, 'displayName')).data?.me;
        expect(await name()).toEqual({ displayName: 'Before' });
        const held = await withSubscriptionHeld(
          d.app,
          BUS_CONFIRMATION_TIMEOUT_MS / 3,
          () => c.gql(UPDATE_PROFILE, { name: 'After' }, { token: user.accessToken }),
          name,
        );
        expect(held.answer.data).toEqual({ updateProfile: { id: user.user.id, displayName: 'After' } });
        expect(held.nextAnswer).toEqual({ displayName: 'After' });
        expect(held.answeredAfterLetGo).toBe(true);
        // Published (not kept back as if Redis were down), and every receiver here is an instance that confirmed.
        expect(
          limited.warnings.filter((line) => line.includes('could not publish') || line.includes(UNCONFIRMED_WARNING)),
        ).toEqual([]);
      } finally {
        await limited.close();
      }
    });

    it('malformed and spoofed confirmations and bus messages are ignored: changes still wait for B', async () => {
      await until(() => a.app.bus.live() && b.app.bus.live(), 'both instances to be subscribed');
      const user = await registerUser(a.gql, { displayName: 'Before' });
      expect((await me(b.gql, user.accessToken, 'displayName')).data?.me).toEqual({ displayName: 'Before' });
      const confirmations = (await admin.pubsub('CHANNELS', confirmationChannel('*'))) as string[];
      const ids = confirmations.map((channel) => channel.slice(confirmationChannel('').length));
      const junk = [
        '',
        'x',
        '-1',
        '1.5',
        '1e3',
        '9'.repeat(40),
        '{"id":"1"}',
        'constructor',
        '__proto__',
        'y'.repeat(1 << 20),
        '1 ',
        ' 1',
        '1 not-an-instance',
        `1 ${ids[0]} and more`,
      ];
      for (const channel of confirmations) for (const message of junk) await admin.publish(channel, message);
      const messages = [
        'not json',
        'null',
        '[]',
        '"string"',
        JSON.stringify({ kind: 'userChanged', userIds: [user.user.id], from: 42, id: ['1'] }),
        JSON.stringify({ kind: 'userChanged', userIds: [user.user.id], from: 'not-a-uuid', id: '1' }),
        JSON.stringify({ kind: 'nonsense', from: ids[0], id: '1' }),
        JSON.stringify({ kind: 'userChanged', userIds: [user.user.id], from: ids[1], id: '1'.repeat(17) }),
        JSON.stringify({ kind: 'userChanged', userIds: [user.user.id], from: `auth:revocations`, id: '7' }),
      ];
      for (const message of messages) await admin.publish(REVOCATION_CHANNEL, message);
      // Both instances still answer, and a change still waits for the held instance's own confirmation.
      const { answer, answeredAfterLetGo, nextOnB } = await changeWithBHeld(user.accessToken, 'After');
      expect(answer.data).toEqual({ updateProfile: { id: user.user.id, displayName: 'After' } });
      expect(answeredAfterLetGo).toBe(true);
      expect(nextOnB).toEqual({ displayName: 'After' });
    });
  });
});
