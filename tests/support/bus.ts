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
