// Carries, from the instance that committed them to every listener on every instance, "these sessions were
// revoked" and "these users' rows changed": in process by default (memory.ts), through Redis pub/sub when
// REDIS_URL is set (redis.ts). Also tells whether it can deliver right now (`live`), for caches that must not
// serve what an undelivered message would have invalidated.
import { REVOCATION_REASONS, type RevocationReason } from '../db/entities.ts';

export interface SessionRevokedEvent {
  /**
   * Null only for a deleted account's sessions read back from the (anonymised) audit trail by an instance that
   * never heard of the deletion (src/sessions/revoked-sessions.ts); never on the wire.
   */
  readonly userId: string | null;
  readonly sessionIds: readonly string[];
  readonly reason: RevocationReason;
  /** Milliseconds since the epoch. */
  readonly revokedAt: number;
  /**
   * The client each session was opened for, by session id (for the revocation feed). Optional: messages from
   * instances that predate it have none, and a session missing from it is reported without a client.
   */
  readonly clientIds?: Readonly<Record<string, string>>;
}

/**
 * A client's committed state (API.md "Clients"), all of it but the secret's hash: every instance replaces its copy
 * with it, so a disabled client or a rotated secret is refused everywhere as soon as the message arrives. Times are
 * milliseconds since the epoch.
 */
export interface ClientChangedEvent {
  readonly id: string;
  readonly name: string;
  readonly type: 'PUBLIC' | 'CONFIDENTIAL';
  /** As stored: empty means the configured AUDIENCE. */
  readonly audiences: readonly string[];
  readonly redirectUris: readonly string[];
  readonly allowedOrigins: readonly string[];
  readonly scopes: readonly string[];
  readonly disabled: boolean;
  /** Service tokens issued at or before this instant are refused (secret rotated, client disabled). */
  readonly tokensRevokedAt: number | null;
  readonly tokensRevokedReason: RevocationReason | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** Committed changes to users' rows: these ids, or (`all`) any user, e.g. after messages may have been lost. */
export type UserChangedEvent = { readonly userIds: readonly string[] } | { readonly all: true };

export type RevocationListener = (event: SessionRevokedEvent) => void;
export type ClientChangedListener = (event: ClientChangedEvent) => void;
export type UserChangedListener = (event: UserChangedEvent) => void;
/** Told `false` when the bus stops delivering and `true` once every message published from then on reaches it. */
export type LivenessListener = (live: boolean) => void;

export interface RevocationBus {
  /**
   * Publishes a committed revocation: this instance's listeners hear it at once, other instances through the bus.
   * With Redis, resolves once every other instance has applied it (redis.ts: confirmations, 2.5 s at most).
   */
  publish(event: SessionRevokedEvent): Promise<void>;
  /** Tells only this instance's listeners (used when catching up on revocations missed during an outage). */
  deliverLocally(event: SessionRevokedEvent): void;
  /** Returns the function that unsubscribes. */
  subscribe(listener: RevocationListener): () => void;
  /**
   * Publishes committed changes to users' rows: this instance's listeners hear it before this resolves, other
   * instances through the bus; with Redis, it resolves once they have applied it too (confirmations, as `publish`).
   */
  publishUserChanged(event: UserChangedEvent): Promise<void>;
  /** Returns the function that unsubscribes. */
  subscribeUserChanged(listener: UserChangedListener): () => void;
  /** Publishes a client's committed state: every instance has applied it when this resolves (as `publish`). */
  publishClientChanged(event: ClientChangedEvent): Promise<void>;
  /** Returns the function that unsubscribes. */
  subscribeClientChanged(listener: ClientChangedListener): () => void;
  /**
   * Whether this instance hears every message published from now on. False while the subscription is down
   * (and until it is confirmed again after a reconnect): whatever was published meanwhile may be lost.
   */
  live(): boolean;
  /** Returns the function that unsubscribes. */
  onLiveness(listener: LivenessListener): () => void;
  close(): Promise<void>;
}

/** A listener set; one throwing listener does not starve the others. */
export function createListeners<E>(onError: (error: unknown) => void) {
  const listeners = new Set<(event: E) => void>();
  return {
    add(listener: (event: E) => void) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    emit(event: E) {
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

/** Parses a revocation from the wire; undefined for anything malformed. */
export function parseEvent(value: unknown): SessionRevokedEvent | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { userId, sessionIds, reason, revokedAt } = value as Record<string, unknown>;
  if (typeof userId !== 'string' || typeof revokedAt !== 'number' || !Number.isFinite(revokedAt)) return undefined;
  if (!Array.isArray(sessionIds) || !sessionIds.every((id) => typeof id === 'string')) return undefined;
  if (!(REVOCATION_REASONS as readonly unknown[]).includes(reason)) return undefined;
  const event = { userId, sessionIds, reason: reason as RevocationReason, revokedAt };
  const clientIds = parseClientIds((value as Record<string, unknown>).clientIds, sessionIds);
  if (clientIds === null) return undefined;
  return clientIds ? { ...event, clientIds } : event;
}

/** A revocation's `clientIds` from the wire: undefined when absent, null when malformed; only its sessions'. */
function parseClientIds(
  value: unknown,
  sessionIds: readonly string[],
): Readonly<Record<string, string>> | undefined | null {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const entries = Object.entries(value);
  if (entries.some(([, clientId]) => typeof clientId !== 'string' || clientId.length === 0 || clientId.length > 64)) {
    return null;
  }
  const sessions = new Set(sessionIds);
  // Object.fromEntries defines own properties, so a key such as __proto__ sets no prototype.
  return Object.fromEntries(entries.filter(([sessionId]) => sessions.has(sessionId))) as Record<string, string>;
}

/** The most user ids one message names; a larger change is sent as `all`. */
export const MAX_USER_IDS_PER_MESSAGE = 1000;

/** Parses a users-changed message from the wire; undefined for anything malformed. */
export function parseUserChanged(value: unknown): UserChangedEvent | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { userIds, all } = value as Record<string, unknown>;
  if (all === true && userIds === undefined) return { all: true };
  if (all !== undefined || !Array.isArray(userIds) || userIds.length > MAX_USER_IDS_PER_MESSAGE) return undefined;
  if (!userIds.every((id) => typeof id === 'string' && id.length > 0 && id.length <= 64)) return undefined;
  return { userIds };
}

const isStringList = (value: unknown): value is string[] =>
  Array.isArray(value) &&
  value.length <= 1000 &&
  value.every((item) => typeof item === 'string' && item.length <= 2048);
const isTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

/** Parses a client change from the wire; undefined for anything malformed. */
export function parseClientChanged(value: unknown): ClientChangedEvent | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.id !== 'string' || v.id.length === 0 || v.id.length > 64 || typeof v.name !== 'string') return undefined;
  if (v.type !== 'PUBLIC' && v.type !== 'CONFIDENTIAL') return undefined;
  if (![v.audiences, v.redirectUris, v.allowedOrigins, v.scopes].every(isStringList)) return undefined;
  if (typeof v.disabled !== 'boolean' || !isTime(v.createdAt) || !isTime(v.updatedAt)) return undefined;
  if (v.tokensRevokedAt !== null && !isTime(v.tokensRevokedAt)) return undefined;
  const reason = v.tokensRevokedReason;
  if (reason !== null && !(REVOCATION_REASONS as readonly unknown[]).includes(reason)) return undefined;
  return {
    id: v.id,
    name: v.name,
    type: v.type,
    audiences: v.audiences as string[],
    redirectUris: v.redirectUris as string[],
    allowedOrigins: v.allowedOrigins as string[],
    scopes: v.scopes as string[],
    disabled: v.disabled,
    tokensRevokedAt: v.tokensRevokedAt as number | null,
    tokensRevokedReason: reason as RevocationReason | null,
    createdAt: v.createdAt,
    updatedAt: v.updatedAt,
  };
}

/** What a bus message carries: messages without a `kind` are revocations (the only kind before user changes). */
export type BusMessage =
  | { readonly kind: 'sessionRevoked'; readonly event: SessionRevokedEvent }
  | { readonly kind: 'userChanged'; readonly event: UserChangedEvent }
  | { readonly kind: 'clientChanged'; readonly event: ClientChangedEvent };

export function parseMessage(value: unknown): BusMessage | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const kind = (value as { kind?: unknown }).kind;
  if (kind === undefined || kind === 'sessionRevoked') {
    const event = parseEvent(value);
    return event && { kind: 'sessionRevoked', event };
  }
  if (kind === 'userChanged') {
    const event = parseUserChanged(value);
    return event && { kind: 'userChanged', event };
  }
  if (kind === 'clientChanged') {
    const event = parseClientChanged((value as { client?: unknown }).client);
    return event && { kind: 'clientChanged', event };
  }
  return undefined;
}
