// The in-process RevocationBus: one instance, so publishing is delivering.
import type { Logger } from 'pino';
import { createListeners, type RevocationBus } from './revocation-bus.ts';

export function createMemoryRevocationBus(logger: Logger): RevocationBus {
  const listeners = createListeners((error) => logger.error({ err: error }, 'revocation listener failed'));
  return {
    async publish(event) {
      listeners.emit(event);
    },
    deliverLocally: (event) => listeners.emit(event),
    subscribe: (listener) => listeners.add(listener),
    async close() {
      listeners.clear();
    },
  };
}
