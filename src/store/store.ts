// A small key-value store with expiry, for one-time codes, OAuth state and similar short-lived secrets.
// In process by default; Redis when REDIS_URL is set, so every instance sees the same values.

export interface KeyValueStore {
  /** Stores `value` under `key`, replacing any previous value; it disappears after `ttlMs`. */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  get(key: string): Promise<string | null>;
  /** Reads and deletes in one atomic step: of several concurrent takers, one gets the value. */
  take(key: string): Promise<string | null>;
  delete(...keys: string[]): Promise<void>;
  /** Adds one to a counter (created at 1 with `ttlMs` to live) and returns the new count. */
  increment(key: string, ttlMs: number): Promise<number>;
}
