// Fixed-window rate limits (rate-limiter-flexible): in Redis when configured, so every instance counts
// together, in this process otherwise. One factory per app; each caller names its own limiter.
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AuthError } from '../errors.ts';

export interface LimitOptions {
  /** How many actions a key may take per window. */
  readonly points: number;
  readonly durationSeconds: number;
  /** Once over the limit, the key stays refused this long (default: until the window ends). */
  readonly blockSeconds?: number;
}

export type LimitOutcome =
  | { readonly allowed: true; readonly remaining: number }
  | { readonly allowed: false; readonly retryAfterMs: number };

export interface Limiter {
  /**
   * Counts one action for `key`, atomically (one Redis script, or one synchronous step in memory), so that of
   * any number of concurrent callers exactly `points` are allowed per window; over the limit, says how long
   * until the window lets it through again. There is deliberately no "may I?" without counting: a check that
   * counts nothing lets every concurrent caller through.
   */
  consume(key: string): Promise<LimitOutcome>;
  /** Gives back one action counted by `consume` (one that did not happen after all); never leaves credit. */
  refund(key: string): Promise<void>;
  /** Refuses `key` for `seconds`, whatever its count, and whatever is refunded to it meanwhile. */
  block(key: string, seconds: number): Promise<void>;
  /** Forgets `key`'s count. */
  reset(key: string): Promise<void>;
}

export type LimiterFactory = (name: string, options: LimitOptions) => Limiter;

/** How far past its limit a blocked key's count is set: more than any number of refunds in flight at once. */
const BLOCK_MARGIN = 1_000_000;

/** Limiters share `redis` (the app's command connection) when given one; names keep their counters apart. */
export function createLimiterFactory(redis: Redis | undefined): LimiterFactory {
  return (name, { points, durationSeconds, blockSeconds }) => {
    const options = {
      keyPrefix: `auth:rl:${name}`,
      points,
      duration: durationSeconds,
      ...(blockSeconds ? { blockDuration: blockSeconds } : {}),
    };
    // While Redis is away, each instance counts on its own rather than failing the request: limits stay
    // enforced (per instance) and sign-in keeps working.
    const limiter = redis
      ? new RateLimiterRedis({
          ...options,
          storeClient: redis,
          rejectIfRedisNotReady: true,
          insuranceLimiter: new RateLimiterMemory(options),
        })
      : new RateLimiterMemory(options);
    // msBeforeNext is -1 for a key stored without expiry; never tell a client "retry in 0 seconds".
    const wait = (res: RateLimiterRes) => Math.max(1000, res.msBeforeNext);
    return {
      async consume(key) {
        try {
          const res = await limiter.consume(key);
          return { allowed: true, remaining: res.remainingPoints };
        } catch (rejection) {
          // A RateLimiterRes means "over the limit"; anything else (Redis down) is a real failure.
          if (rejection instanceof RateLimiterRes) return { allowed: false, retryAfterMs: wait(rejection) };
          throw rejection;
        }
      },
      async refund(key) {
        const res = await limiter.reward(key, 1);
        // The count was forgotten (reset, or its window ended) between the consume and this refund: the refund
        // made it negative, an action in credit. Take the credit back.
        if (res.consumedPoints < 0) await limiter.penalty(key, -res.consumedPoints);
      },
      async block(key, seconds) {
        // Far past the limit, by more than the actions that can be in flight (reserved or refused, not compared):
        // their refunds (attempts.ts) can never bring a blocked key back under its limit.
        await limiter.set(key, points + BLOCK_MARGIN, seconds);
      },
      async reset(key) {
        await limiter.delete(key);
      },
    };
  };
}

/** The RATE_LIMITED error of API.md, with `retryAfter` in whole seconds (at least 1). */
export const rateLimited = (retryAfterMs: number): AuthError =>
  new AuthError('RATE_LIMITED', 'Too many requests; try again later', {
    retryAfter: Math.max(1, Math.ceil(retryAfterMs / 1000)),
  });
