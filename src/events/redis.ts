// The Redis RevocationBus: publishes on a channel every instance subscribes to. Local listeners hear
// their own instance's revocations at once (not via Redis), so a Redis outage never delays them; other
// instances catch up from the database when their subscription comes back (`onReconnect`).
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { RedisConnections } from '../store/redis-connection.ts';
import { createListeners, parseEvent, type RevocationBus } from './revocation-bus.ts';

export const REVOCATION_CHANNEL = 'auth:revocations';

export async function createRedisRevocationBus(
  redis: RedisConnections,
  logger: Logger,
  onReconnect: () => void,
): Promise<RevocationBus> {
  const instance = randomUUID();
  const listeners = createListeners((error) => logger.error({ err: error }, 'revocation listener failed'));

  const onMessage = (channel: string, message: string) => {
    if (channel !== REVOCATION_CHANNEL) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      parsed = undefined;
    }
    const from = (parsed as { from?: unknown } | undefined)?.from;
    const event = parseEvent(parsed);
    if (!event) {
      logger.warn('ignored a malformed revocation message');
      return;
    }
    if (from !== instance) listeners.emit(event);
  };

  let subscribedOnce = false;
  const onReady = () => {
    // ioredis resubscribes by itself after a reconnect; what was published meanwhile is lost, so reload.
    if (subscribedOnce) onReconnect();
  };

  redis.subscriber.on('message', onMessage);
  redis.subscriber.on('ready', onReady);
  await redis.subscriber.subscribe(REVOCATION_CHANNEL);
  subscribedOnce = true;

  return {
    async publish(event) {
      listeners.emit(event);
      try {
        await redis.commands.publish(REVOCATION_CHANNEL, JSON.stringify({ from: instance, ...event }));
      } catch (error) {
        // The database already holds the revocation; other instances reload it when Redis is back.
        logger.warn({ err: { message: (error as Error).message } }, 'could not publish a revocation to Redis');
      }
    },
    deliverLocally: (event) => listeners.emit(event),
    subscribe: (listener) => listeners.add(listener),
    async close() {
      redis.subscriber.off('message', onMessage);
      redis.subscriber.off('ready', onReady);
      listeners.clear();
    },
  };
}
