// Carries "these sessions were revoked" from the instance that revoked them to every listener on every
// instance: in process by default (memory.ts), through Redis pub/sub when REDIS_URL is set (redis.ts).
import { REVOCATION_REASONS, type RevocationReason } from '../db/entities.ts';

export interface SessionRevokedEvent {
  readonly userId: string;
  readonly sessionIds: readonly string[];
  readonly reason: RevocationReason;
  /** Milliseconds since the epoch. */
  readonly revokedAt: number;
}

export type RevocationListener = (event: SessionRevokedEvent) => void;

export interface RevocationBus {
  /** Publishes a committed revocation: this instance's listeners hear it at once, other instances through the bus. */
  publish(event: SessionRevokedEvent): Promise<void>;
  /** Tells only this instance's listeners (used when catching up on revocations missed during an outage). */
  deliverLocally(event: SessionRevokedEvent): void;
  /** Returns the function that unsubscribes. */
  subscribe(listener: RevocationListener): () => void;
  close(): Promise<void>;
}

/** The listener set both implementations share; one throwing listener does not starve the others. */
export function createListeners(onError: (error: unknown) => void) {
  const listeners = new Set<RevocationListener>();
  return {
    add(listener: RevocationListener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    emit(event: SessionRevokedEvent) {
      for (const listener of listeners) {
        try {
          listener(event);
        } catch (error) {
          onError(error);
        }
      }
    },
    clear: () => listeners.clear(),
  };
}

/** Parses an event from the wire; undefined for anything malformed. */
export function parseEvent(value: unknown): SessionRevokedEvent | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { userId, sessionIds, reason, revokedAt } = value as Record<string, unknown>;
  if (typeof userId !== 'string' || typeof revokedAt !== 'number' || !Number.isFinite(revokedAt)) return undefined;
  if (!Array.isArray(sessionIds) || !sessionIds.every((id) => typeof id === 'string')) return undefined;
  if (!(REVOCATION_REASONS as readonly unknown[]).includes(reason)) return undefined;
  return { userId, sessionIds, reason: reason as RevocationReason, revokedAt };
}
