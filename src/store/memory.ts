// The in-process KeyValueStore: a Map with deadlines, swept lazily.
import type { Clock } from '../clock.ts';
import type { KeyValueStore } from './store.ts';

export function createMemoryStore(clock: Clock): KeyValueStore {
  const entries = new Map<string, { value: string; expiresAt: number }>();
  let writes = 0;
  const live = (key: string) => {
    const entry = entries.get(key);
    if (entry && entry.expiresAt <= clock.now()) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };
  const sweep = () => {
    // Amortised clean-up so that expired keys nobody reads again do not pile up.
    if (++writes % 1000 !== 0) return;
    const now = clock.now();
    for (const [key, entry] of entries) if (entry.expiresAt <= now) entries.delete(key);
  };
  return {
    async set(key, value, ttlMs) {
      sweep();
      entries.set(key, { value, expiresAt: clock.now() + ttlMs });
    },
    async get(key) {
      return live(key)?.value ?? null;
    },
    async take(key) {
      const entry = live(key);
      entries.delete(key);
      return entry?.value ?? null;
    },
    async delete(...keys) {
      for (const key of keys) entries.delete(key);
    },
    async increment(key, ttlMs) {
      sweep();
      const entry = live(key);
      const count = entry ? Number(entry.value) + 1 : 1;
      entries.set(key, { value: String(count), expiresAt: entry?.expiresAt ?? clock.now() + ttlMs });
      return count;
    },
  };
}
