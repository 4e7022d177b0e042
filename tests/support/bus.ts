// Holding an instance's bus subscription: its connection to Redis stops reading, as a starved or stalled instance's
// would, so that what Redis hands it waits in the socket while the instance goes on serving requests.
import { pino } from 'pino';
import type { App } from '../../src/app.ts';
import type { Clock } from '../../src/clock.ts';
import { type Dialect, startTestApp, type TestApp } from './app.ts';
import { ed25519Pem } from './expect.ts';

/** What a publisher logs when an instance did not confirm within the bound (src/events/redis.ts). */
export const UNCONFIRMED_WARNING = 'not every instance confirmed a bus message in time';

export interface InstancePair {
  readonly a: TestApp;
  readonly b: TestApp;
  /** A's log lines at warn and above (clear it before the step it is about). */
  readonly warnings: string[];
  close(): Promise<void>;
}

/**
 * Two instances sharing one database (`dialect`) and the Redis at `redisUrl`, as a fleet's are; and `clock`, when
 * given (a TestClock a test moves for both).
 */
export async function startInstancePair(
  dialect: Dialect,
  redisUrl: string,
  { clock }: { clock?: Clock } = {},
): Promise<InstancePair> {
  const env = { REDIS_URL: redisUrl, JWT_PRIVATE_KEY: ed25519Pem() };
  const warnings: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line) => warnings.push(line) });
  const a = await startTestApp({ dialect, env, logger, clock });
  const b = await startTestApp({ dialect, env, databaseUrl: a.databaseUrl, migrate: false, clock });
  return {
    a,
    b,
    warnings,
    async close() {
      await b.close();
      await a.close();
    },
  };
}

/**
 * Pauses `app`'s subscription connection; returns the function that lets it read again (idempotent). Keep it held
 * for less than the connection's stall bound (STALL_MS) unless the test is about a stalled subscription.
 */
export function holdSubscription(app: App): () => void {
  const stream = app.redis?.subscriber.stream;
  if (!stream) throw new Error('the app has no Redis subscription to hold');
  stream.pause();
  return () => {
    stream.resume();
  };
}

/**
 * Runs `change` with `held`'s subscription held, then `next` as soon as `change` has answered. The subscription
 * reads again once `letGoAfterMs` have passed, or once `next` is done. Resolves to both answers and whether the
 * subscription had been let go before `change` answered (it must have been, when `change` publishes on the bus).
 */
export async function withSubscriptionHeld<T, U>(
  held: App,
  letGoAfterMs: number,
  change: () => Promise<T>,
  next: () => Promise<U>,
): Promise<{ answer: T; nextAnswer: U; answeredAfterLetGo: boolean }> {
  const release = holdSubscription(held);
  let letGo = false;
  const timer = setTimeout(() => {
    letGo = true;
    release();
  }, letGoAfterMs);
  try {
    const answer = await change();
    const answeredAfterLetGo = letGo;
    const nextAnswer = await next();
    return { answer, nextAnswer, answeredAfterLetGo };
  } finally {
    clearTimeout(timer);
    release();
  }
}
