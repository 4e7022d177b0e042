// Opens the ioredis connections the app shares (one for commands, one for pub/sub subscriptions), to one Redis
// (REDIS_URL) or to the master that Sentinel names (REDIS_SENTINELS), and tells whether both are up right now.
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisSentinelConfig } from '../config.ts';

/** Where Redis is: a URL, or the sentinels that know which server is the master now. */
export type RedisTarget = { readonly url: string } | { readonly sentinel: RedisSentinelConfig };

export interface RedisConnections {
  readonly commands: Redis;
  /** A connection in subscriber mode can run nothing else, so pub/sub gets its own. */
  readonly subscriber: Redis;
  /** Both connections are ready (connected, and the subscriber subscribed again after a reconnect). */
  readonly up: boolean;
  /** Calls `listener` each time `up` changes; returns the function that stops it. */
  onStateChange(listener: (up: boolean) => void): () => void;
  close(): Promise<void>;
}

/**
 * A Redis that stops answering without closing its sockets (a hung process, a network black hole) is not seen by
 * ioredis: the connection stays "ready", commands wait forever, and the bus counts as live, so nothing reads
 * revocations from the database. Each connection is pinged every HEARTBEAT_MS; one unanswered for STALL_MS is
 * dropped and reconnected (down until Redis answers again), and a command on the commands connection gives up
 * after COMMAND_TIMEOUT_MS (rate limits then count in memory; a store operation fails).
 */
/** How often each connection pings Redis (ms). */
export const HEARTBEAT_MS = 500;
/** A ping unanswered this long (ms) means the connection has stalled: it is dropped and made again. */
export const STALL_MS = 1500;
const COMMAND_TIMEOUT_MS = 1000;

function options(target: RedisTarget, name: string): RedisOptions {
  const common: RedisOptions = {
    connectionName: name,
    // Not on the subscriber: a SUBSCRIBE that timed out would leave the bus unsubscribed on a live connection.
    ...(name === 'auth-commands' ? { commandTimeout: COMMAND_TIMEOUT_MS } : {}),
    // Fail fast while Redis is away instead of queueing requests behind it; reconnect in the background.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    lazyConnect: true,
  };
  if ('url' in target) return common;
  const { sentinels, name: masterName, password, sentinelPassword } = target.sentinel;
  return {
    ...common,
    sentinels: sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: masterName,
    ...(password ? { password } : {}),
    ...(sentinelPassword ? { sentinelPassword } : {}),
    // Keep asking the sentinels while none answers (all restarting) rather than giving up for good.
    sentinelRetryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    // A demoted master answers READONLY to writes: reconnect, and the sentinels name the new master. (Sentinel
    // also disconnects the clients of an instance it reconfigures. Not ioredis's failoverDetector: its disconnect
    // during a reconnection's lookup ends the connection for good.)
    reconnectOnError: (error) => /READONLY/.test(error.message),
  };
}

function open(
  target: RedisTarget,
  name: string,
  logger: Logger,
  onChange: () => void,
  closing: { value: boolean },
): Redis {
  const redis = 'url' in target ? new Redis(target.url, options(target, name)) : new Redis(options(target, name));
  let down = false;
  redis.on('error', (error) => {
    // error.message and code only: an ioredis error can quote the command, arguments included.
    if (!down) logger.warn({ err: { message: error.message }, connection: name }, 'redis unavailable');
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger.info({ connection: name }, 'redis reconnected');
    down = false;
  });
  for (const event of ['ready', 'close', 'end', 'reconnecting']) redis.on(event, onChange);
  // ioredis gives a connection up ('end') in a few paths (a sentinel lookup cut short, no sentinel answering):
  // unless we closed it, start again, so that no outage needs a restart.
  redis.on('end', () => {
    if (closing.value) return;
    setTimeout(() => {
      if (!closing.value && redis.status === 'end') redis.connect().catch(() => undefined);
    }, 1000).unref();
  });
  let pingSentAt: number | undefined;
  const heartbeat = setInterval(() => {
    if (closing.value || redis.status !== 'ready') {
      pingSentAt = undefined;
      if (closing.value) clearInterval(heartbeat);
      return;
    }
    if (pingSentAt !== undefined) {
      if (Date.now() - pingSentAt < STALL_MS) return;
      pingSentAt = undefined;
      logger.warn({ connection: name }, 'redis stopped answering: reconnecting');
      redis.disconnect(true);
      return;
    }
    const sentAt = Date.now();
    pingSentAt = sentAt;
    redis.ping().then(
      () => {
        if (pingSentAt === sentAt) pingSentAt = undefined;
      },
      // A ping that timed out stays unanswered (the stall above); one cut by a closing connection is reset above.
      () => undefined,
    );
  }, HEARTBEAT_MS);
  heartbeat.unref();
  return redis;
}

export async function connectRedis(target: RedisTarget, logger: Logger): Promise<RedisConnections> {
  const listeners = new Set<(up: boolean) => void>();
  let up = false;
  const isUp = () => commands.status === 'ready' && subscriber.status === 'ready';
  const changed = () => {
    const now = isUp();
    if (now === up) return;
    up = now;
    for (const listener of listeners) listener(now);
  };
  const closing = { value: false };
  const commands = open(target, 'auth-commands', logger, changed, closing);
  const subscriber = open(target, 'auth-subscriber', logger, changed, closing);
  // ioredis rejects connect() with "Connection is closed."; why (ECONNREFUSED, a wrong password) came as an event.
  let reason: unknown;
  const remember = (error: unknown) => {
    reason ??= error;
  };
  commands.on('error', remember);
  try {
    await Promise.all([commands.connect(), subscriber.connect()]);
  } catch (error) {
    closing.value = true;
    commands.disconnect();
    subscriber.disconnect();
    throw reason instanceof Error ? reason : error;
  } finally {
    commands.off('error', remember);
  }
  up = isUp();
  return {
    commands,
    subscriber,
    get up() {
      return isUp();
    },
    onStateChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    async close() {
      closing.value = true;
      listeners.clear();
      await Promise.allSettled([commands.quit(), subscriber.quit()]);
    },
  };
}
