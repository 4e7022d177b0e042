// The in-process RevocationBus: one instance, so publishing is delivering, and it is always live.
import type { Logger } from 'pino';
import {
  type ClientChangedEvent,
  createListeners,
  type RevocationBus,
  type SessionRevokedEvent,
  type UserChangedEvent,
} from './revocation-bus.ts';

export function createMemoryRevocationBus(logger: Logger): RevocationBus {
  const listeners = createListeners<SessionRevokedEvent>((error) =>
    logger.error({ err: error }, 'revocation listener failed'),
  );
  const userListeners = createListeners<UserChangedEvent>((error) =>
    logger.error({ err: error }, 'user change listener failed'),
  );
  const clientListeners = createListeners<ClientChangedEvent>((error) =>
    logger.error({ err: error }, 'client change listener failed'),
  );
  return {
    async publish(event) {
      listeners.emit(event);
    },
    deliverLocally: (event) => listeners.emit(event),
    subscribe: (listener) => listeners.add(listener),
    async publishUserChanged(event) {
      userListeners.emit(event);
    },
    subscribeUserChanged: (listener) => userListeners.add(listener),
    async publishClientChanged(event) {
      clientListeners.emit(event);
    },
    subscribeClientChanged: (listener) => clientListeners.add(listener),
    live: () => true,
    onLiveness: () => () => {},
    async close() {
      listeners.clear();
      userListeners.clear();
      clientListeners.clear();
    },
  };
}
