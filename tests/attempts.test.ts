// The reserve-compare-settle mechanism that every check of a secret goes through (src/limits/attempts.ts), on
// limiters in memory and in Redis: exact counts under concurrency, refunds that never leave credit, fail closed.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError } from '../src/errors.ts';
import { GuessLimit, reserveAttempt } from '../src/limits/attempts.ts';
import { createLimiterFactory, type LimiterFactory } from '../src/limits/limiters.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';

const kinds = ['memory', ...(serviceAvailable('redis-server') ? ['redis'] : [])] as const;

describe.each(kinds)('with limiters in %s', (kind) => {
  let redis: RunningService | undefined;
  let client: Redis | undefined;
  let limiters: LimiterFactory;
  let n = 0;
  /** A limiter of its own for each test (names keep counters apart in a shared Redis). */
  const limiter = (points: number) => limiters(`attempts-test-${++n}`, { points, durationSeconds: 60 });

  beforeAll(async () => {
    if (kind === 'redis') {
      redis = await startRedis();
      client = new Redis(redis.url);
      // Until the connection is ready the limiters count in their in-memory insurance instead.
      await new Promise((ready) => client?.once('ready', ready));
    }
    limiters = createLimiterFactory(client);
  });
  afterAll(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  /** How many of `tries` concurrent consumes `key` still allows (spends them). */
  const allowance = async (l: ReturnType<typeof limiter>, key: string, tries = 20) =>
    (await Promise.all(Array.from({ length: tries }, () => l.consume(key)))).filter((o) => o.allowed).length;

  const refusal = (promise: Promise<unknown>) =>
    promise.then(
      () => 'reserved',
      (error: unknown) => (error instanceof AuthError ? error.code : 'other'),
    );

  it('reserves exactly the limit of 40 concurrent guesses, before any comparison', async () => {
    const guesses = new GuessLimit(limiter(10));
    const outcomes = await Promise.all(Array.from({ length: 40 }, () => refusal(guesses.reserve('k'))));
    expect(outcomes.filter((o) => o === 'reserved')).toHaveLength(10);
    expect(outcomes.filter((o) => o === 'RATE_LIMITED')).toHaveLength(30);
  });

  it('gives back the points taken before a used-up counter refused the attempt', async () => {
    const first = limiter(5);
    const second = limiter(1);
    await second.consume('b');
    const rules = {
      charges: [
        { limiter: first, key: 'a', onMatch: 'reset' as const },
        { limiter: second, key: 'b', onMatch: 'refund' as const },
      ],
    };
    expect(await refusal(reserveAttempt(rules))).toBe('RATE_LIMITED');
    expect(await allowance(first, 'a')).toBe(5);
  });

  it('settles the right secret by each charge (refund, reset) and a wrong one by keeping the attempt spent', async () => {
    const refunded = limiter(3);
    const reset = limiter(3);
    const charges = [
      { limiter: refunded, key: 'r', onMatch: 'refund' as const },
      { limiter: reset, key: 's', onMatch: 'reset' as const },
    ];
    const exhausted: number[] = [];
    const rules = {
      charges,
      onMismatch: async (used: readonly unknown[]) => {
        exhausted.push(used.length);
        return 'wrong';
      },
    };
    expect(await (await reserveAttempt(rules)).compare(async () => false)).toEqual({
      matched: false,
      failure: 'wrong',
    });
    expect(await (await reserveAttempt(rules)).compare(async () => false)).toEqual({
      matched: false,
      failure: 'wrong',
    });
    // The third wrong guess takes the last point of both: onMismatch hears that it exhausted them.
    await (await reserveAttempt(rules)).compare(async () => false);
    expect(exhausted).toEqual([0, 0, 2]);
    expect(await refusal(reserveAttempt(rules))).toBe('RATE_LIMITED');

    const fresh = [limiter(3), limiter(3)] as const;
    const freshRules = {
      charges: [
        { limiter: fresh[0], key: 'r', onMatch: 'refund' as const },
        { limiter: fresh[1], key: 's', onMatch: 'reset' as const },
      ],
    };
    await (await reserveAttempt(freshRules)).compare(async () => false);
    expect(await (await reserveAttempt(freshRules)).compare(async () => true)).toEqual({ matched: true });
    // Refund: only the right guess's own point came back (one wrong guess stays); reset: all forgotten.
    expect(await allowance(fresh[0], 'r')).toBe(2);
    expect(await allowance(fresh[1], 's')).toBe(3);
  });

  it('keeps the attempt spent when the comparison fails, and compares once per reservation', async () => {
    const l = limiter(2);
    const guesses = new GuessLimit(l);
    const attempt = await guesses.reserve('k');
    await expect(attempt.compare(async () => Promise.reject(new Error('database down')))).rejects.toThrow(
      'database down',
    );
    await expect(attempt.compare(async () => true)).rejects.toThrow('compared once');
    expect(await allowance(l, 'k')).toBe(1);
  });

  it('never leaves credit: a refund after the count was forgotten does not add an attempt', async () => {
    const l = limiter(3);
    await l.consume('k');
    await l.reset('k');
    await l.refund('k');
    expect(await allowance(l, 'k')).toBe(3);
  });
});
