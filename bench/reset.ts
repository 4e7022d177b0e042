// requestPasswordReset's answer time for an address with an account and for one without, one request at a time:
// the API answers `true` for both so that nobody can probe for accounts (README), which holds only if the answer
// takes about as long either way (the code is made and stored for a known address; the mail is sent after the
// answer, not before it).
import { gql } from './load.ts';

const REQUEST_RESET = 'mutation($email: String!) { requestPasswordReset(email: $email) }';

/** One kind of address's answer times (ms). */
export interface ResetTimes {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
}

const percentile = (sorted: readonly number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;

const timesOf = (samples: number[]): ResetTimes => {
  const sorted = [...samples].sort((a, b) => a - b);
  return { count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
};

/**
 * Asks `url` for a reset code `count` times for known addresses (`known(i)`, each asked once, so that the
 * per-account limit of code requests never applies) and `count` times for unknown ones, alternating, one request
 * in flight; times each from request to answer (ms). Throws on any answer but `true`.
 */
export async function measureResetAnswers(
  url: string,
  count: number,
  known: (i: number) => string,
): Promise<{ known: ResetTimes; unknown: ResetTimes }> {
  const knownMs: number[] = [];
  const unknownMs: number[] = [];
  const timed = async (email: string, into: number[]) => {
    const start = performance.now();
    const data = await gql<{ requestPasswordReset: boolean }>(url, REQUEST_RESET, { email });
    into.push(performance.now() - start);
    if (data.requestPasswordReset !== true) throw new Error(`requestPasswordReset answered ${JSON.stringify(data)}`);
  };
  for (let i = 0; i < count; i++) {
    await timed(known(i), knownMs);
    await timed(`nobody-${i}-${process.pid}@example.com`, unknownMs);
  }
  return { known: timesOf(knownMs), unknown: timesOf(unknownMs) };
}

/** Prints the two rows and the difference of their medians. */
export function printResetAnswers(label: string, times: { known: ResetTimes; unknown: ResetTimes }): void {
  const ms = (n: number) => n.toFixed(2);
  console.log(
    `\n${label}requestPasswordReset, one request at a time, ${times.known.count} of each: ` +
      `an address with an account (a code made, its mail sent after the answer) p50 ${ms(times.known.p50)} ms, ` +
      `p99 ${ms(times.known.p99)} ms; an address without p50 ${ms(times.unknown.p50)} ms, ` +
      `p99 ${ms(times.unknown.p99)} ms; the medians differ by ${ms(times.known.p50 - times.unknown.p50)} ms.`,
  );
}
