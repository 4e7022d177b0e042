// The Redis RevocationBus: publishes on a channel every instance subscribes to. Local listeners hear their own
// instance's messages at once (not via Redis), so a Redis outage never delays them. Messages published while an
// instance's subscription is down are lost to it: it is not `live` until its subscription is confirmed again,
// then it catches up (`onReconnect` reloads revocations from the database; liveness listeners drop caches).
// A publish resolves once every instance subscribed when it was published has confirmed it (on a channel of the
// publisher's own, naming itself) or is gone, so that what one instance answered after a change every instance's
// next request sees.
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
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
 * Where instance `id` hears the confirmations of what it published: `auth:confirmed:<id>`. Subscribed with the
 * bus's channel in one SUBSCRIBE, it also marks the connection as an instance that confirms: what else listens (an
 * instance of a version before confirmations during a rolling deploy, `redis-cli SUBSCRIBE`) is not waited for.
 * Not `auth:confirmations:<id>`, where instances of the version that confirmed with a bare message id heard them
 * and counted, by that pattern, whom to wait for: across a rolling deploy from it, neither version lists the
 * other's instances, whose confirmations it could not read (each change would wait out the bound).
 */
export const confirmationChannel = (id: string) => `auth:confirmed:${id}`;
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
 * While a publish waits, how often it asks Redis which instances are still subscribed (ms): a receiver gone since
 * (an instance killed, a subscription dropped) will never confirm, and one not listed then is not waited for.
 */
const RECEIVERS_RECHECK_MS = 100;
const MAX_UNSENT_REVOCATIONS = 10_000;
/** How many revoked sessions the bus remembers having delivered, so that a second delivery of one is not told again. */
export const MAX_DELIVERED_REMEMBERED = 50_000;

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
  // again by the instance that could not publish it then. Listeners (subscribers) hear each session once. The last
  // MAX_DELIVERED_REMEMBERED sessions are remembered, the oldest out first (`has` is not a use): in O(1), where
  // walking a Set from its front walks over the holes its deletions leave (about 14 µs an event at this bound).
  const delivered = new LRUCache<string, true>({ max: MAX_DELIVERED_REMEMBERED });
  const deliverOnce = (event: SessionRevokedEvent) => {
    const sessionIds = event.sessionIds.filter((id) => !delivered.has(id));
    if (sessionIds.length === 0) return;
    for (const id of sessionIds) delivered.set(id, true);
    listeners.emit(sessionIds.length === event.sessionIds.length ? event : { ...event, sessionIds });
  };

  // Publishes waiting for confirmations, by message id. A confirmation may come before Redis answers the publish
  // (`awaited` then still unknown): `confirmedBy` keeps who has confirmed, whatever the order.
  const ownConfirmations = confirmationChannel(instance);
  let sequence = 0;
  interface Waiting {
    /** The instances that have confirmed the message. */
    readonly confirmedBy: Set<string>;
    /** The instances still waited for, once known: those subscribed when it was published, less the confirmed. */
    awaited?: Set<string>;
    /** Without PUBSUB (a Redis user not allowed it): how many receivers PUBLISH counted, each waited for. */
    receivers?: number;
    readonly done: () => void;
  }
  const waiting = new Map<string, Waiting>();
  const settled = (entry: Waiting) =>
    entry.awaited !== undefined
      ? entry.awaited.size === 0
      : entry.receivers !== undefined && entry.confirmedBy.size >= entry.receivers;
  const confirmedBy = (id: string, by: string) => {
    const entry = waiting.get(id);
    if (!entry) return;
    entry.confirmedBy.add(by);
    entry.awaited?.delete(by);
    if (settled(entry)) entry.done();
  };

  /**
   * The instances that confirm and are subscribed now (the ids in their confirmation channels' names), from a
   * PUBSUB CHANNELS reply; undefined for anything else.
   */
  const instancesIn = (channels: unknown): Set<string> | undefined => {
    if (!Array.isArray(channels)) return undefined;
    const prefix = confirmationChannel('');
    const ids = new Set<string>();
    for (const channel of channels) {
      const id = typeof channel === 'string' && channel.startsWith(prefix) ? channel.slice(prefix.length) : '';
      if (INSTANCE_ID.test(id)) ids.add(id);
    }
    return ids;
  };

  /**
   * Publishes `payload` on the channel and resolves once every instance that confirms and was subscribed when it
   * was published (this one included) has confirmed it, or is gone, or after BUS_CONFIRMATION_TIMEOUT_MS. Rejects
   * when Redis does not take it.
   */
  const publishConfirmed = async (payload: Record<string, unknown>): Promise<void> => {
    const id = String(++sequence);
    let done = () => {};
    const allConfirmed = new Promise<void>((resolve) => {
      done = resolve;
    });
    const entry: Waiting = { confirmedBy: new Set(), done };
    waiting.set(id, entry);
    let timer: NodeJS.Timeout | undefined;
    let recheck: NodeJS.Timeout | undefined;
    try {
      // Who is subscribed, asked just before the PUBLISH on the same connection (Redis answers them in order): an
      // instance that comes in between receives the message without being waited for (it is not `live` until its
      // SUBSCRIBE is answered, and catches up then); one that leaves in between is waited for until the recheck
      // below finds it gone. Each is matched by its id, so an instance that confirms and then leaves never stands
      // in for one that has not confirmed yet. Without PUBSUB (a Redis user not allowed it), every receiver
      // PUBLISH counted is waited for.
      const [instances, published] = await Promise.allSettled([
        redis.commands.pubsub('CHANNELS', CONFIRMING_INSTANCES),
        redis.commands.publish(REVOCATION_CHANNEL, JSON.stringify({ ...payload, from: instance, id })),
      ]);
      if (published.status === 'rejected') throw published.reason;
      const subscribed = instances.status === 'fulfilled' ? instancesIn(instances.value) : undefined;
      if (subscribed) {
        for (const by of entry.confirmedBy) subscribed.delete(by);
        entry.awaited = subscribed;
      } else {
        entry.receivers = published.value;
      }
      if (settled(entry)) return;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), BUS_CONFIRMATION_TIMEOUT_MS);
      });
      // An instance gone since (killed, its subscription dropped) will never confirm: not waited for any more.
      recheck = setInterval(() => {
        redis.commands.pubsub('CHANNELS', CONFIRMING_INSTANCES).then(
          (reply) => {
            const now = instancesIn(reply);
            if (!now || !entry.awaited) return;
            for (const by of entry.awaited) if (!now.has(by)) entry.awaited.delete(by);
            if (settled(entry)) entry.done();
          },
          () => undefined,
        );
      }, RECEIVERS_RECHECK_MS);
      if (await Promise.race([allConfirmed.then(() => false), timedOut])) {
        logger.warn(
          {
            receivers: entry.awaited ? entry.awaited.size + entry.confirmedBy.size : entry.receivers,
            confirmed: entry.confirmedBy.size,
            waitedMs: BUS_CONFIRMATION_TIMEOUT_MS,
          },
          'not every instance confirmed a bus message in time: one may be stalled or gone',
        );
      }
    } finally {
      clearTimeout(timer);
      clearInterval(recheck);
      waiting.delete(id);
    }
  };

  /**
   * Tells the publisher that this instance has applied its message `id` (nothing for messages without one): `<id>
   * <this instance's id>` on the publisher's confirmation channel.
   */
  const confirm = (from: unknown, id: unknown) => {
    if (typeof from !== 'string' || typeof id !== 'string' || !MESSAGE_ID.test(id)) return;
    if (from === instance) confirmedBy(id, instance);
    else if (INSTANCE_ID.test(from)) {
      redis.commands.publish(confirmationChannel(from), `${id} ${instance}`).catch(() => undefined);
    }
  };

  /** A confirmation heard on this instance's channel: `<message id> <instance id>`; anything else is ignored. */
  const onConfirmation = (message: string) => {
    const space = message.indexOf(' ');
    const id = message.slice(0, space);
    const by = message.slice(space + 1);
    if (space > 0 && MESSAGE_ID.test(id) && INSTANCE_ID.test(by)) confirmedBy(id, by);
  };

  const onMessage = (channel: string, message: string) => {
    if (channel === ownConfirmations) {
      onConfirmation(message);
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
