// The Redis RevocationBus: publishes on a channel every instance subscribes to. Local listeners hear their own
// instance's messages at once (not via Redis), so a Redis outage never delays them. Messages published while an
// instance's subscription is down are lost to it: it is not `live` until its subscription is confirmed again,
// then it catches up (`onReconnect` reloads revocations from the database; liveness listeners drop caches).
// A publish resolves once every instance that Redis handed the message to has confirmed it (on a channel of the
// publisher's own), so that what one instance answered after a change every instance's next request sees.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { HEARTBEAT_MS, type RedisConnections, STALL_MS } from '../store/redis-connection.ts';
import {
  type ClientChangedEvent,
  createListeners,
  type LivenessListener,
  MAX_USER_IDS_PER_MESSAGE,
  parseMessage,
  type RevocationBus,
  type SessionRevokedEvent,
  type UserChangedEvent,
} from './revocation-bus.ts';

export const REVOCATION_CHANNEL = 'auth:revocations';
/**
 * Where instance `id` hears the confirmations of what it published: `auth:confirmations:<id>`. Subscribed with the
 * bus's channel in one SUBSCRIBE, it also marks the connection as an instance that confirms: what else listens (an
 * instance of a version before confirmations during a rolling deploy, `redis-cli SUBSCRIBE`) is not waited for.
 */
const confirmationChannel = (id: string) => `auth:confirmations:${id}`;
const CONFIRMING_INSTANCES = confirmationChannel('*');
/**
 * How long a publish waits for every receiver's confirmation (2.5 s). Past it the publish resolves anyway and logs
 * a warning: a receiver that stays silent is gone (Redis drops a vanished peer only when TCP gives up) or frozen.
 * By then an instance whose subscription stalled has found out by its own heartbeat (a ping
 * unanswered for STALL_MS, checked every HEARTBEAT_MS) and dropped the subscription: it is not `live`, and its
 * caches read the database until it is subscribed again.
 */
export const BUS_CONFIRMATION_TIMEOUT_MS = STALL_MS + 2 * HEARTBEAT_MS;
/** An instance's id as it is on the wire (a UUID): nothing else names a confirmation channel. */
const INSTANCE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MESSAGE_ID = /^[0-9]{1,16}$/;
/**
 * While a publish waits, how often it asks Redis how many instances are still subscribed (ms): a receiver gone
 * since (an instance killed, a subscription dropped) will never confirm, and one not counted then is not waited for.
 */
const RECEIVERS_RECHECK_MS = 100;
const MAX_UNSENT_REVOCATIONS = 10_000;
const MAX_DELIVERED_REMEMBERED = 50_000;

export async function createRedisRevocationBus(
  redis: RedisConnections,
  logger: Logger,
  onReconnect: () => void,
): Promise<RevocationBus> {
  const instance = randomUUID();
  const onError = (error: unknown) => logger.error({ err: error }, 'bus listener failed');
  const listeners = createListeners<SessionRevokedEvent>(onError);
  const userListeners = createListeners<UserChangedEvent>(onError);
  const livenessListeners = createListeners<boolean>(onError);
  const clientListeners = createListeners<ClientChangedEvent>(onError);

  // A revocation can reach this instance twice: read from the database while the bus was down, then published
  // again by the instance that could not publish it then. Listeners (subscribers) hear each session once.
  const delivered = new Set<string>();
  const deliverOnce = (event: SessionRevokedEvent) => {
    const sessionIds = event.sessionIds.filter((id) => !delivered.has(id));
    if (sessionIds.length === 0) return;
    for (const id of sessionIds) delivered.add(id);
    for (const id of delivered) {
      if (delivered.size <= MAX_DELIVERED_REMEMBERED) break;
      delivered.delete(id);
    }
    listeners.emit(sessionIds.length === event.sessionIds.length ? event : { ...event, sessionIds });
  };

  // Publishes waiting for confirmations, by message id. A confirmation may come before Redis answers the publish
  // (`receivers` then still unknown).
  const ownConfirmations = confirmationChannel(instance);
  let sequence = 0;
  const waiting = new Map<string, { confirmed: number; receivers?: number; done: () => void }>();
  const confirmedOnce = (id: string) => {
    const entry = waiting.get(id);
    if (!entry) return;
    entry.confirmed++;
    if (entry.receivers !== undefined && entry.confirmed >= entry.receivers) entry.done();
  };

  /** How many instances that confirm are subscribed now (their confirmation channels), from a PUBSUB CHANNELS reply. */
  const instancesIn = (channels: unknown) => (Array.isArray(channels) ? channels.length : Number.NaN);

  /**
   * Publishes `payload` on the channel and resolves once every instance Redis handed it to (this one's own
   * subscription included) has confirmed it, or after BUS_CONFIRMATION_TIMEOUT_MS. Rejects when Redis does not take it.
   */
  const publishConfirmed = async (payload: Record<string, unknown>): Promise<void> => {
    const id = String(++sequence);
    let done = () => {};
    const allConfirmed = new Promise<void>((resolve) => {
      done = resolve;
    });
    const entry: { confirmed: number; receivers?: number; done: () => void } = { confirmed: 0, done };
    waiting.set(id, entry);
    let timer: NodeJS.Timeout | undefined;
    let recheck: NodeJS.Timeout | undefined;
    try {
      // The receivers PUBLISH counted (every subscriber, pattern ones included), and right after it how many
      // instances that confirm are subscribed. Not atomic, and need not be: an instance that leaves in between is
      // not live; one that comes in between is waited for needlessly (until it goes, or the bound). Without the
      // count (a Redis user not allowed PUBSUB), every receiver is waited for.
      const [published, instances] = await Promise.allSettled([
        redis.commands.publish(REVOCATION_CHANNEL, JSON.stringify({ ...payload, from: instance, id })),
        redis.commands.pubsub('CHANNELS', CONFIRMING_INSTANCES),
      ]);
      if (published.status === 'rejected') throw published.reason;
      const confirming = instances.status === 'fulfilled' ? instancesIn(instances.value) : Number.NaN;
      entry.receivers = Number.isNaN(confirming) ? published.value : Math.min(published.value, confirming);
      if (entry.confirmed >= entry.receivers) return;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), BUS_CONFIRMATION_TIMEOUT_MS);
      });
      // Waited for: at most as many as are still subscribed. An instance that came since makes this wait longer,
      // never shorter: it is counted instead of one that is gone.
      recheck = setInterval(() => {
        redis.commands.pubsub('CHANNELS', CONFIRMING_INSTANCES).then(
          (reply) => {
            const subscribed = instancesIn(reply);
            if (Number.isNaN(subscribed) || subscribed >= (entry.receivers ?? 0)) return;
            entry.receivers = subscribed;
            if (entry.confirmed >= subscribed) entry.done();
          },
          () => undefined,
        );
      }, RECEIVERS_RECHECK_MS);
      if (await Promise.race([allConfirmed.then(() => false), timedOut])) {
        logger.warn(
          { receivers: entry.receivers, confirmed: entry.confirmed, waitedMs: BUS_CONFIRMATION_TIMEOUT_MS },
          'not every instance confirmed a bus message in time: one may be stalled or gone',
        );
      }
    } finally {
      clearTimeout(timer);
      clearInterval(recheck);
      waiting.delete(id);
    }
  };

  /** Tells the publisher that this instance has applied its message `id` (nothing for messages without one). */
  const confirm = (from: unknown, id: unknown) => {
    if (typeof from !== 'string' || typeof id !== 'string' || !MESSAGE_ID.test(id)) return;
    if (from === instance) confirmedOnce(id);
    else if (INSTANCE_ID.test(from)) redis.commands.publish(confirmationChannel(from), id).catch(() => undefined);
  };

  const onMessage = (channel: string, message: string) => {
    if (channel === ownConfirmations) {
      confirmedOnce(message);
      return;
    }
    if (channel !== REVOCATION_CHANNEL) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      parsed = undefined;
    }
    const { from, id } = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
    const received = parseMessage(parsed);
    if (!received) {
      logger.warn('ignored a malformed bus message');
    } else if (from !== instance) {
      if (received.kind === 'sessionRevoked') deliverOnce(received.event);
      else if (received.kind === 'clientChanged') clientListeners.emit(received.event);
      else userListeners.emit(received.event);
    }
    // Applied (listeners run synchronously), or never to be: either way the publisher need not wait for it.
    confirm(from, id);
  };

  // Subscribed and confirmed since the connection last came up; `attempt` tells a stale confirmation from the
  // current one when the connection drops again before Redis answers.
  let subscribed = false;
  let attempt = 0;
  let closed = false;
  const live = () => subscribed && redis.subscriber.status === 'ready';

  // User changes this instance could not publish: sent once it is back, so that instances that stayed connected
  // meanwhile drop what they cached. More ids than one message may carry become `all`.
  let unsent: Set<string> | 'all' | undefined;
  const keepUnsent = (event: UserChangedEvent) => {
    if ('all' in event || unsent === 'all') {
      unsent = 'all';
      return;
    }
    unsent ??= new Set();
    for (const id of event.userIds) unsent.add(id);
    if (unsent.size > MAX_USER_IDS_PER_MESSAGE) unsent = 'all';
  };
  const sendUserChanged = async (change: UserChangedEvent): Promise<boolean> => {
    const event: UserChangedEvent =
      'userIds' in change && change.userIds.length > MAX_USER_IDS_PER_MESSAGE ? { all: true } : change;
    try {
      await publishConfirmed({ kind: 'userChanged', ...event });
      return true;
    } catch (error) {
      logger.warn({ err: { message: (error as Error).message } }, 'could not publish a user change to Redis');
      keepUnsent(event);
      return false;
    }
  };

  // Revocations this instance could not publish (its own connection to Redis down): sent once it is back.
  // Instances whose bus stayed up meanwhile neither read the database nor reload, so this is how they hear of
  // them (Redis lost by this instance only, or instances reconnecting one after another). Bounded: past the
  // bound the oldest are dropped, and logged.
  const unsentRevocations: SessionRevokedEvent[] = [];
  const sendRevocation = async (event: SessionRevokedEvent): Promise<void> => {
    try {
      await publishConfirmed({ ...event });
    } catch (error) {
      logger.warn({ err: { message: (error as Error).message } }, 'could not publish a revocation to Redis');
      unsentRevocations.push(event);
      if (unsentRevocations.length > MAX_UNSENT_REVOCATIONS) {
        unsentRevocations.splice(0, unsentRevocations.length - MAX_UNSENT_REVOCATIONS);
        logger.error('too many revocations waiting for Redis: the oldest will reach other instances only by expiry');
      }
    }
  };
  // Client changes this instance could not publish: the latest state of each client, sent once Redis is back.
  const unsentClients = new Map<string, ClientChangedEvent>();
  const sendClientChanged = async (event: ClientChangedEvent): Promise<void> => {
    try {
      await publishConfirmed({ kind: 'clientChanged', client: event });
    } catch (error) {
      logger.warn({ err: { message: (error as Error).message } }, 'could not publish a client change to Redis');
      const waiting = unsentClients.get(event.id);
      if (!waiting || waiting.updatedAt <= event.updatedAt) unsentClients.set(event.id, event);
    }
  };

  // Whatever waits is sent again each time the connections come back; a send that fails again waits for the next.
  const sendUnsent = async () => {
    if (closed) return;
    for (const event of unsentRevocations.splice(0)) await sendRevocation(event);
    const clients = [...unsentClients.values()];
    unsentClients.clear();
    for (const event of clients) await sendClientChanged(event);
    if (unsent) {
      const pending = unsent;
      unsent = undefined;
      await sendUserChanged(pending === 'all' ? { all: true } : { userIds: [...pending] });
    }
  };
  const stopWatching = redis.onStateChange((up) => {
    if (up) void sendUnsent();
  });

  const onDown = () => {
    attempt++;
    if (!subscribed) return;
    subscribed = false;
    livenessListeners.emit(false);
  };
  const onReady = () => {
    // ioredis resubscribes by itself after a reconnect, but only a confirmed SUBSCRIBE (ours, answered after
    // its own on the same connection) means that messages reach this instance again.
    const current = ++attempt;
    redis.subscriber.subscribe(REVOCATION_CHANNEL, ownConfirmations).then(
      async () => {
        if (closed || current !== attempt || subscribed) return;
        subscribed = true;
        livenessListeners.emit(true);
        // What was published meanwhile is lost: reload revocations.
        onReconnect();
        await sendUnsent();
      },
      (error: Error) => logger.warn({ err: { message: error.message } }, 'could not resubscribe to the bus'),
    );
  };

  redis.subscriber.on('message', onMessage);
  redis.subscriber.on('ready', onReady);
  redis.subscriber.on('close', onDown);
  redis.subscriber.on('end', onDown);
  await redis.subscriber.subscribe(REVOCATION_CHANNEL, ownConfirmations);
  subscribed = true;

  return {
    async publish(event) {
      deliverOnce(event);
      await sendRevocation(event);
    },
    deliverLocally: deliverOnce,
    subscribe: (listener) => listeners.add(listener),
    async publishUserChanged(event) {
      userListeners.emit(event);
      await sendUserChanged(event);
    },
    subscribeUserChanged: (listener) => userListeners.add(listener),
    async publishClientChanged(event) {
      clientListeners.emit(event);
      await sendClientChanged(event);
    },
    subscribeClientChanged: (listener) => clientListeners.add(listener),
    live,
    onLiveness: (listener: LivenessListener) => livenessListeners.add(listener),
    async close() {
      closed = true;
      stopWatching();
      redis.subscriber.off('message', onMessage);
      redis.subscriber.off('ready', onReady);
      redis.subscriber.off('close', onDown);
      redis.subscriber.off('end', onDown);
      listeners.clear();
      userListeners.clear();
      clientListeners.clear();
      livenessListeners.clear();
    },
  };
}
