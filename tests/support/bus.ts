// Holding an instance's bus subscription: its connection to Redis stops reading, as a starved or stalled instance's
// would, so that what Redis hands it waits in the socket while the instance goes on serving requests.
import type { App } from '../../src/app.ts';

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
