import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryStore } from '../src/store/memory.ts';
import { createRedisStore } from '../src/store/redis.ts';
import type { KeyValueStore } from '../src/store/store.ts';
import { TestClock } from './support/clock.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';

const hasRedis = serviceAvailable('redis-server');

function contract(name: string, make: () => { store: KeyValueStore; expire: (key: string) => Promise<void> }) {
  describe(`${name} key-value store`, () => {
    it('sets, gets and deletes values', async () => {
      const { store } = make();
      await store.set('a', '1', 60_000);
      expect(await store.get('a')).toBe('1');
      await store.set('a', '2', 60_000);
      expect(await store.get('a')).toBe('2');
      await store.delete('a');
      expect(await store.get('a')).toBeNull();
    });

    it('hands a value to exactly one of several concurrent takers', async () => {
      const { store } = make();
      await store.set('once', 'secret', 60_000);
      const taken = await Promise.all(Array.from({ length: 20 }, () => store.take('once')));
      expect(taken.filter((v) => v === 'secret')).toHaveLength(1);
      expect(await store.get('once')).toBeNull();
    });

    it('counts up from 1 and forgets the counter when it expires', async () => {
      const { store, expire } = make();
      expect(await store.increment('n', 60_000)).toBe(1);
      expect(await store.increment('n', 60_000)).toBe(2);
      await expire('n');
      expect(await store.increment('n', 60_000)).toBe(1);
    });

    it('forgets a value after its time to live', async () => {
      const { store, expire } = make();
      await store.set('t', 'v', 60_000);
      await expire('t');
      expect(await store.get('t')).toBeNull();
      expect(await store.take('t')).toBeNull();
    });
  });
}

const clock = new TestClock();
contract('in-process', () => ({
  store: createMemoryStore(clock),
  expire: async () => clock.advance(60_001),
}));

describe.skipIf(!hasRedis)('Redis', () => {
  let server: RunningService;
  let redis: Redis;
  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url);
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });
  contract('Redis', () => ({
    store: createRedisStore(redis, `test:${Math.random()}:`),
    // Redis keeps time itself: expire by shortening the key's life instead of sleeping a minute.
    expire: async (key) => {
      const keys = await redis.keys(`test:*:${key}`);
      if (keys.length) await redis.pexpire(keys[0] as string, 1);
      await new Promise((r) => setTimeout(r, 20));
    },
  }));
});
