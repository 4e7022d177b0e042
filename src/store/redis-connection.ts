// Opens the ioredis connections the app shares: one for commands, one for pub/sub subscriptions.
import { Redis } from 'ioredis';
import type { Logger } from 'pino';

export interface RedisConnections {
  readonly commands: Redis;
  /** A connection in subscriber mode can run nothing else, so pub/sub gets its own. */
  readonly subscriber: Redis;
  close(): Promise<void>;
}

function open(url: string, name: string, logger: Logger): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    // Fail fast while Redis is away instead of queueing requests behind it; reconnect in the background.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    lazyConnect: true,
  });
  let down = false;
  redis.on('error', (error) => {
    if (!down) logger.warn({ err: { message: error.message }, connection: name }, 'redis unavailable');
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger.info({ connection: name }, 'redis reconnected');
    down = false;
  });
  return redis;
}

export async function connectRedis(url: string, logger: Logger): Promise<RedisConnections> {
  const commands = open(url, 'auth-commands', logger);
  const subscriber = open(url, 'auth-subscriber', logger);
  try {
    await Promise.all([commands.connect(), subscriber.connect()]);
  } catch (error) {
    commands.disconnect();
    subscriber.disconnect();
    throw error;
  }
  return {
    commands,
    subscriber,
    async close() {
      await Promise.allSettled([commands.quit(), subscriber.quit()]);
    },
  };
}
