// The reserve-compare-settle mechanism that every check of a secret goes through (src/limits/attempts.ts), on
// limiters in memory and in Redis: exact counts under concurrency, refunds that never leave credit, fail closed,
// and an attempt abandoned before its comparison (the database down) given back, once, and never after one.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError } from '../src/errors.ts';
import { GuessLimit, reserveAttempt, withAttempt } from '../src/limits/attempts.ts';
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

  it('gives an attempt released before its comparison back, once, and then refuses to compare it', async () => {
    const first = limiter(3);
    const second = limiter(3);
    const rules = {
      charges: [
        { limiter: first, key: 'a', onMatch: 'reset' as const },
        { limiter: second, key: 'b', onMatch: 'refund' as const },
      ],
    };
    const attempt = await reserveAttempt(rules);
    await attempt.release();
    // Idempotent: a second release (or twenty at once) gives nothing more back.
    await Promise.all(Array.from({ length: 20 }, () => attempt.release()));
    await expect(attempt.compare(async () => false)).rejects.toThrow('released attempt is not compared');
    expect(await allowance(first, 'a')).toBe(3);
    expect(await allowance(second, 'b')).toBe(3);
  });

  it('never gives back an attempt whose comparison ran: wrong, thrown, or still running', async () => {
    const l = limiter(4);
    const wrong = await reserveAttempt({ charges: [{ limiter: l, key: 'k', onMatch: 'refund' }] });
    await wrong.compare(async () => false);
    await wrong.release();
    const thrown = await reserveAttempt({ charges: [{ limiter: l, key: 'k', onMatch: 'refund' }] });
    await expect(thrown.compare(async () => Promise.reject(new Error('hasher failed')))).rejects.toThrow();
    await thrown.release();
    // Released while the comparison is still running (it settles as wrong afterwards).
    const running = await reserveAttempt({ charges: [{ limiter: l, key: 'k', onMatch: 'refund' }] });
    let finish: (matched: boolean) => void = () => {};
    const verdict = running.compare(() => new Promise<boolean>((resolve) => (finish = resolve)));
    await running.release();
    finish(false);
    expect((await verdict).matched).toBe(false);
    // Three comparisons ran and all three stay spent.
    expect(await allowance(l, 'k')).toBe(1);
  });

  it('withAttempt releases the attempt when the work throws before comparing, and only then', async () => {
    const l = limiter(3);
    const guesses = new GuessLimit(l);
    // Twenty lookups failing at once (the database down) cost nothing.
    const failures = await Promise.all(
      Array.from({ length: 20 }, () =>
        refusal(
          withAttempt(guesses.reserve('k'), async () => {
            throw new Error('database down');
          }),
        ),
      ),
    );
    // Each was reserved (or refused while the others held every point), then failed: none compared anything.
    expect(failures.every((f) => f === 'other' || f === 'RATE_LIMITED')).toBe(true);
    expect(await allowance(l, 'k')).toBe(3);

    const m = limiter(3);
    const limit = new GuessLimit(m);
    // A wrong guess after which the work fails (an audit row cannot be written) stays spent.
    await expect(
      withAttempt(limit.reserve('k'), async (attempt) => {
        await attempt.compare(async () => false);
        throw new Error('flush failed');
      }),
    ).rejects.toThrow('flush failed');
    // So does a comparison that throws (fail closed), through withAttempt too.
    await expect(
      withAttempt(limit.reserve('k'), (attempt) => attempt.compare(async () => Promise.reject(new Error('x')))),
    ).rejects.toThrow('x');
    expect(await withAttempt(limit.reserve('k'), (attempt) => attempt.compare(async () => false))).toEqual({
      matched: false,
      failure: undefined,
    });
    expect(await refusal(limit.reserve('k'))).toBe('RATE_LIMITED');
  });

  it('keeps the comparisons of concurrent guesses, some of which fail before comparing, within the limit', async () => {
    const l = limiter(5);
    const guesses = new GuessLimit(l);
    let compared = 0;
    const outcomes = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        refusal(
          withAttempt(guesses.reserve('k'), async (attempt) => {
            // Every third lookup fails; the rest compare a wrong guess.
            await new Promise((resolve) => setTimeout(resolve, i % 7));
            if (i % 3 === 0) throw new Error('database down');
            await attempt.compare(async () => {
              compared++;
              return false;
            });
          }),
        ),
      ),
    );
    expect(compared).toBeLessThanOrEqual(5);
    // What the released attempts gave back is still there for the next guesses, up to the limit and no further.
    const more = await Promise.all(
      Array.from({ length: 20 }, () =>
        refusal(
          withAttempt(guesses.reserve('k'), (attempt) =>
            attempt.compare(async () => {
              compared++;
              return false;
            }),
          ),
        ),
      ),
    );
    expect(compared).toBe(5);
    expect(outcomes.filter((o) => o === 'reserved').length + more.filter((o) => o === 'reserved').length).toBe(5);
  });

  it('keeps a blocked counter blocked whatever the attempts reserved before the block give back', async () => {
    const l = limiter(5);
    const rules = { charges: [{ limiter: l, key: 'k', onMatch: 'refund' as const }] };
    // Four attempts in flight (reserved, not compared) when the fifth locks the counter.
    const inFlight = await Promise.all(Array.from({ length: 4 }, () => reserveAttempt(rules)));
    await (await reserveAttempt(rules)).compare(async () => false);
    await l.block('k', 60);
    await Promise.all(inFlight.map((attempt) => attempt.release()));
    expect(await refusal(reserveAttempt(rules))).toBe('RATE_LIMITED');
  });

  it('gives back the points taken when a later counter fails (its store down) while reserving', async () => {
    const first = limiter(3);
    const broken = {
      consume: () => Promise.reject(new Error('store down')),
      refund: () => Promise.resolve(),
      block: () => Promise.resolve(),
      reset: () => Promise.resolve(),
    };
    const rules = {
      charges: [
        { limiter: first, key: 'a', onMatch: 'reset' as const },
        { limiter: broken, key: 'b', onMatch: 'refund' as const },
      ],
    };
    await expect(reserveAttempt(rules)).rejects.toThrow('store down');
    expect(await allowance(first, 'a')).toBe(3);
  });

  it('never leaves credit: a refund after the count was forgotten does not add an attempt', async () => {
    const l = limiter(3);
    await l.consume('k');
    await l.reset('k');
    await l.refund('k');
    expect(await allowance(l, 'k')).toBe(3);
  });
});
