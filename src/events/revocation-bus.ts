// Carries "these sessions were revoked" from the instance that revoked them to every listener.
// This in-process bus is the embedded default; a Redis implementation shares it across instances.
import type { RevocationReason } from '../db/entities.ts';

export interface SessionRevokedEvent {
  readonly userId: string;
  readonly sessionIds: readonly string[];
  readonly reason: RevocationReason;
  /** Milliseconds since the epoch. */
  readonly revokedAt: number;
}

export type RevocationListener = (event: SessionRevokedEvent) => void;

export interface RevocationBus {
  /** Publishes after the revoking transaction has committed; resolves once handed over. */
  publish(event: SessionRevokedEvent): Promise<void>;
  /** Returns the function that unsubscribes. */
  subscribe(listener: RevocationListener): () => void;
  close(): Promise<void>;
}

export function createMemoryRevocationBus(): RevocationBus {
  const listeners = new Set<RevocationListener>();
  return {
    async publish(event) {
      for (const listener of listeners) listener(event);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      listeners.clear();
    },
  };
}
