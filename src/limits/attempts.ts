// The one way a secret (a password, a one-time code, later an MFA factor) is checked under a limit: reserve the
// attempt on every counter atomically, then compare, then settle (or release, when nothing was compared).
// Concurrent guesses can never exceed a limit, and a request that fails before comparing costs no attempt.
import { type Limiter, rateLimited } from './limiters.ts';

/** One counter an attempt is charged to. */
export interface Charge {
  readonly limiter: Limiter;
  readonly key: string;
  /** What the right secret does to this counter: give this attempt back, or forget every failure it counted. */
  readonly onMatch: 'refund' | 'reset';
}

export interface AttemptRules<Failure> {
  /** Reserved in this order; the first one used up refuses the attempt. */
  readonly charges: readonly Charge[];
  /** After a wrong secret; `exhausted` are the charges whose last point this attempt took (e.g. to lock out). */
  readonly onMismatch?: (exhausted: readonly Charge[]) => Promise<Failure>;
  /** After the right secret, besides each charge's own rule. */
  readonly onMatch?: () => Promise<void>;
}

export type Verdict<Failure> = { readonly matched: true } | { readonly matched: false; readonly failure: Failure };

/** A reserved attempt at a secret, to be compared once. */
export interface Attempt<Failure> {
  /**
   * Runs the comparison and settles the attempt by its outcome: the right secret refunds or resets each
   * counter as its charge says; a wrong one keeps the attempt spent. If the comparison throws, the attempt stays
   * spent (fail closed) and the error goes on.
   */
  compare(matches: () => Promise<boolean>): Promise<Verdict<Failure>>;
  /**
   * Gives the reserved points back if nothing was compared: the request failed for a reason that is not a guess
   * (the database down before the account was read), and must not count as a failed one. A no-op once `compare`
   * has begun (a comparison that ran stays settled by its outcome, even if it threw) and on a second call; a
   * released attempt cannot be compared. withAttempt calls it, so that no caller can forget to.
   */
  release(): Promise<void>;
}

/**
 * Takes one point from each charge's counter before anything is compared. RATE_LIMITED (with retryAfter) when
 * one is used up; every point it took is given back, the refused counter's too, since nothing was compared:
 * otherwise a burst of refused requests would keep a counter refused after the attempts that filled it were
 * released (say the database was down). A lockout (Limiter.block) lands far enough past the limit that no
 * number of refunds in flight brings the counter back under it.
 */
export async function reserveAttempt<Failure = undefined>(rules: AttemptRules<Failure>): Promise<Attempt<Failure>> {
  const taken: Charge[] = [];
  const exhausted: Charge[] = [];
  const giveBack = () => Promise.all(taken.map(({ limiter, key }) => limiter.refund(key)));
  for (const charge of rules.charges) {
    let outcome: Awaited<ReturnType<Limiter['consume']>>;
    try {
      outcome = await charge.limiter.consume(charge.key);
    } catch (error) {
      // The store failed half-way: nothing will be compared, so the points already taken go back (if the store
      // lets them: otherwise they stay spent, failing closed), and the store's error goes on.
      await giveBack().catch(() => {});
      throw error;
    }
    if (!outcome.allowed) {
      // A refused consume still counts one (rate-limiter-flexible counts every call): give it back with the rest.
      taken.push(charge);
      await giveBack();
      throw rateLimited(outcome.retryAfterMs);
    }
    taken.push(charge);
    if (outcome.remaining === 0) exhausted.push(charge);
  }
  // Both flags are set synchronously, before any await: whichever of compare and release starts first wins, so a
  // comparison never runs on points given back, and points are never given back for a comparison that ran.
  let compared = false;
  let released = false;
  return {
    async compare(matches) {
      // One reservation pays for one comparison.
      if (compared) throw new Error('An attempt is compared once');
      if (released) throw new Error('A released attempt is not compared');
      compared = true;
      if (await matches()) {
        await Promise.all(
          taken.map(({ limiter, key, onMatch }) => (onMatch === 'reset' ? limiter.reset(key) : limiter.refund(key))),
        );
        await rules.onMatch?.();
        return { matched: true };
      }
      const failure = (await rules.onMismatch?.(exhausted)) as Failure;
      return { matched: false, failure };
    },
    async release() {
      if (compared || released) return;
      released = true;
      await giveBack();
    },
  };
}

/**
 * Reserves an attempt (`reservation`, e.g. LoginThrottle.reserve) and runs `work` with it: whatever must happen
 * before the comparison (reading the account) and the comparison itself. When `work` ends without having
 * compared (it threw first: the database is down, a lookup timed out) the attempt is released, so an outage
 * does not spend clients' attempts and lock their accounts. Once compared, the attempt settles as compare says,
 * whatever `work` does next. Every check of a secret goes through this rather than holding an Attempt itself.
 */
export async function withAttempt<Failure, T>(
  reservation: Promise<Attempt<Failure>>,
  work: (attempt: Attempt<Failure>) => Promise<T>,
): Promise<T> {
  const attempt = await reservation;
  try {
    return await work(attempt);
  } finally {
    // A no-op once compared. If the store cannot take the points back either, they stay spent (fail closed) and
    // the caller sees work's own outcome, not the store's error.
    await attempt.release().catch(() => {});
  }
}

/** A limit of wrong guesses per key, which the right guess does not count against (one-time codes, MFA). */
export class GuessLimit {
  readonly #limiter: Limiter;

  constructor(limiter: Limiter) {
    this.#limiter = limiter;
  }

  /**
   * Reserves one guess for `key` (run it through withAttempt); RATE_LIMITED, comparing nothing, once its wrong
   * guesses are used up.
   */
  reserve(key: string): Promise<Attempt<undefined>> {
    return reserveAttempt({ charges: [{ limiter: this.#limiter, key, onMatch: 'refund' }] });
  }
}
