// The one way a secret (a password, a one-time code, later an MFA factor) is checked under a limit: reserve the
// attempt on every counter atomically, then compare, then settle. Concurrent guesses can never exceed a limit.
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
}

/**
 * Takes one point from each charge's counter before anything is compared. RATE_LIMITED (with retryAfter) when
 * one is used up; the points already taken from the charges before it are given back, since nothing was compared.
 * The refused counter keeps its own count: that only keeps it refused until its window ends, which it was anyway,
 * and it cannot be undone safely once a lockout may have overwritten the count.
 */
export async function reserveAttempt<Failure = undefined>(rules: AttemptRules<Failure>): Promise<Attempt<Failure>> {
  const taken: Charge[] = [];
  const exhausted: Charge[] = [];
  for (const charge of rules.charges) {
    const outcome = await charge.limiter.consume(charge.key);
    if (!outcome.allowed) {
      await Promise.all(taken.map(({ limiter, key }) => limiter.refund(key)));
      throw rateLimited(outcome.retryAfterMs);
    }
    taken.push(charge);
    if (outcome.remaining === 0) exhausted.push(charge);
  }
  let compared = false;
  return {
    async compare(matches) {
      // One reservation pays for one comparison.
      if (compared) throw new Error('An attempt is compared once');
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
  };
}

/** A limit of wrong guesses per key, which the right guess does not count against (one-time codes, MFA). */
export class GuessLimit {
  readonly #limiter: Limiter;

  constructor(limiter: Limiter) {
    this.#limiter = limiter;
  }

  /** Reserves one guess for `key`; RATE_LIMITED, comparing nothing, once its wrong guesses are used up. */
  reserve(key: string): Promise<Attempt<undefined>> {
    return reserveAttempt({ charges: [{ limiter: this.#limiter, key, onMatch: 'refund' }] });
  }
}
