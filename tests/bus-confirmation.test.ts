// What one instance answered after a change, every instance's next request sees: a change's response waits until
// every instance Redis handed the bus message to has applied it (a user's row, a revoked session, a disabled
// client), even when the other instance is slow to read it. What else listens on the channel (an instance of a
// version before confirmations, `redis-cli SUBSCRIBE`) is not waited for.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUS_CONFIRMATION_TIMEOUT_MS, REVOCATION_CHANNEL } from '../src/events/redis.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, type TestApp } from './support/app.ts';
import { type InstancePair, startInstancePair, UNCONFIRMED_WARNING, withSubscriptionHeld } from './support/bus.ts';
import { createTestClient, requestToken } from './support/client-credentials.ts';
import { expectUnauthenticated } from './support/expect.ts';
import { me, type Payload, registerUser, revokeSession, signIn } from './support/graphql.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';

const UPDATE_PROFILE = 'mutation($name: String) { updateProfile(input: { displayName: $name }) { id displayName } }';

describe.skipIf(!serviceAvailable('redis-server'))('bus messages confirmed by every instance', () => {
  describe.each(dialects())('on %s', (dialect) => {
    let redis: RunningService;
    let pair: InstancePair;
    let a: TestApp;
    let b: TestApp;
    let warnings: string[];

    beforeAll(async () => {
      redis = await startRedis();
      pair = await startInstancePair(dialect, redis.url);
      ({ a, b, warnings } = pair);
    });

    afterAll(async () => {
      await pair?.close();
      await redis?.stop();
    });

    /** `change` on A with B's subscription held until a third of the confirmation bound, then `next` on B. */
    const withBHeld = <T, U>(change: () => Promise<T>, next: () => Promise<U>) =>
      withSubscriptionHeld(b.app, BUS_CONFIRMATION_TIMEOUT_MS / 3, change, next);

    it("a display name changed on A: A answers once B has dropped its cached row, and B's next read shows it", async () => {
      const user = await registerUser(a.gql, { displayName: 'Before' });
      const name = async () => (await me<{ displayName: string }>(b.gql, user.accessToken, 'displayName')).data?.me;
      expect(await name()).toEqual({ displayName: 'Before' });
      for (const round of [1, 2, 3]) {
        const held = await withBHeld(
          () => a.gql(UPDATE_PROFILE, { name: `After ${round}` }, { token: user.accessToken }),
          name,
        );
        expect(held.answer.data).toEqual({ updateProfile: { id: user.user.id, displayName: `After ${round}` } });
        expect(held.nextAnswer).toEqual({ displayName: `After ${round}` });
        expect(held.answeredAfterLetGo).toBe(true);
      }
    });

    it("a session revoked on A: A answers once B knows, and B refuses the session's access token", async () => {
      const user = await registerUser(a.gql);
      const other: Payload = await signIn(b.gql, user.user.email, user.password);
      expect((await me(b.gql, other.accessToken)).data?.me).toEqual({ id: user.user.id });
      const held = await withBHeld(
        () => revokeSession(a.gql, other.session.id, user.accessToken),
        () => me(b.gql, other.accessToken),
      );
      expect(held.answer.data).toEqual({ revokeSession: true });
      expectUnauthenticated(held.nextAnswer, 'SESSION_REVOKED');
      expect(held.answeredAfterLetGo).toBe(true);
    });

    it("a client disabled on A: A answers once B knows, and B refuses the client's service token", async () => {
      const admin = await signInAsAdmin(a);
      const client = await createTestClient(a.gql, admin.accessToken, {
        id: `held-${Date.now().toString(36)}`,
        scopes: ['users:read'],
      });
      const issued = await requestToken(b.url, { clientId: client.id, secret: client.secret as string });
      expect(issued.status).toBe(200);
      const token = issued.body.access_token as string;
      const read = () => b.gql('query($id: ID!) { user(id: $id) { id } }', { id: admin.user.id }, { token });
      expect((await read()).data).toEqual({ user: { id: admin.user.id } });
      const held = await withBHeld(
        () =>
          a.gql(
            'mutation($id: ID!) { setClientDisabled(id: $id, disabled: true) { disabled } }',
            { id: client.id },
            { token: admin.accessToken },
          ),
        read,
      );
      expect(held.answer.data).toEqual({ setClientDisabled: { disabled: true } });
      expectUnauthenticated(held.nextAnswer, 'CLIENT_DISABLED');
      expect(held.answeredAfterLetGo).toBe(true);
    });

    it('a subscriber that does not confirm (an older instance, redis-cli) is not waited for, and B still sees the change', async () => {
      const outsider = new Redis(redis.url, { lazyConnect: true });
      await outsider.connect();
      try {
        const heard: string[] = [];
        outsider.on('message', (_channel: string, message: string) => heard.push(message));
        await outsider.subscribe(REVOCATION_CHANNEL);
        const user = await registerUser(a.gql, { displayName: 'Before' });
        expect((await me(b.gql, user.accessToken, 'displayName')).data?.me).toEqual({ displayName: 'Before' });
        warnings.length = 0;
        const answer = await a.gql(UPDATE_PROFILE, { name: 'After' }, { token: user.accessToken });
        expect(answer.data).toEqual({ updateProfile: { id: user.user.id, displayName: 'After' } });
        expect(heard.some((message) => message.includes(user.user.id))).toBe(true);
        // A did not wait out the bound for it.
        expect(warnings.filter((line) => line.includes(UNCONFIRMED_WARNING))).toEqual([]);
        expect((await me(b.gql, user.accessToken, 'displayName')).data?.me).toEqual({ displayName: 'After' });
      } finally {
        outsider.disconnect();
      }
    });

    it('an instance of the version that confirmed with bare message ids (a rolling deploy): neither waits for the other', async () => {
      // That version, as it is on the wire: subscribed to the bus and to `auth:confirmations:<its id>` in one
      // SUBSCRIBE, it confirmed a message by publishing the bare message id on `auth:confirmations:<publisher>`, and
      // a publish of its own waited for as many confirmations as `auth:confirmations:*` listed channels.
      const old = randomUUID();
      const oldSubscriber = new Redis(redis.url, { lazyConnect: true });
      const oldCommands = new Redis(redis.url, { lazyConnect: true });
      await Promise.all([oldSubscriber.connect(), oldCommands.connect()]);
      try {
        const user = await registerUser(a.gql, { displayName: 'Before' });
        expect((await me(b.gql, user.accessToken, 'displayName')).data?.me).toEqual({ displayName: 'Before' });
        const confirmedByOld = new Promise<void>((resolve) => {
          oldSubscriber.on('message', (channel: string, message: string) => {
            if (channel !== REVOCATION_CHANNEL || !message.includes(user.user.id)) return;
            const { from, id } = JSON.parse(message) as { from: string; id: string };
            void oldCommands.publish(`auth:confirmations:${from}`, id).then(() => resolve());
          });
        });
        await oldSubscriber.subscribe(REVOCATION_CHANNEL, `auth:confirmations:${old}`);
        // What an instance of that version counts as instances that confirm: itself only, not these (whose
        // confirmations it could not read, so it would wait out its bound for them on every change).
        expect(await oldCommands.pubsub('CHANNELS', 'auth:confirmations:*')).toEqual([`auth:confirmations:${old}`]);
        warnings.length = 0;
        const answer = await a.gql(UPDATE_PROFILE, { name: 'After' }, { token: user.accessToken });
        expect(answer.data).toEqual({ updateProfile: { id: user.user.id, displayName: 'After' } });
        // It did hear the change and confirm it, its way.
        await confirmedByOld;
        // A did not wait out the bound for a confirmation it cannot read.
        expect(warnings.filter((line) => line.includes(UNCONFIRMED_WARNING))).toEqual([]);
        expect((await me(b.gql, user.accessToken, 'displayName')).data?.me).toEqual({ displayName: 'After' });
      } finally {
        oldSubscriber.disconnect();
        oldCommands.disconnect();
      }
    });
  });
});
