// The Redis KeyValueStore: shared by every instance; keys are prefixed so the database can be shared.
import type { Redis } from 'ioredis';
import type { KeyValueStore } from './store.ts';

export function createRedisStore(redis: Redis, prefix = 'auth:kv:'): KeyValueStore {
  const k = (key: string) => prefix + key;
  return {
    async set(key, value, ttlMs) {
      await redis.set(k(key), value, 'PX', Math.max(1, Math.ceil(ttlMs)));
    },
    get: (key) => redis.get(k(key)),
    take: (key) => redis.getdel(k(key)),
    async delete(...keys) {
      if (keys.length) await redis.del(...keys.map(k));
    },
    async increment(key, ttlMs) {
      const results = await redis
        .multi()
        .incr(k(key))
        .pexpire(k(key), Math.max(1, Math.ceil(ttlMs)), 'NX')
        .exec();
      const [error, count] = results?.[0] ?? [new Error('empty MULTI reply'), null];
      if (error) throw error;
      return Number(count);
    },
  };
}
