// createApp(config): builds every part once, wires them, and returns the server and how to close it.
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { createPasswordHasher } from './auth/passwords.ts';
import { type Clock, systemClock } from './clock.ts';
import type { Config } from './config.ts';
import { migrate } from './db/migrate.ts';
import { createOrm, type Em, type Orm } from './db/orm.ts';
import { createMemoryRevocationBus, type RevocationBus } from './events/revocation-bus.ts';
import { createHttpServer } from './http/server.ts';
import { useReadiness } from './http/use-readiness.ts';
import { useWellKnown } from './http/use-well-known.ts';
import { createLogger } from './log.ts';
import type { Services } from './schema/context.ts';
import { buildSchema } from './schema/index.ts';
import { RevokedSessions } from './sessions/revoked-sessions.ts';
import { Sessions } from './sessions/sessions.ts';
import { createMemoryStore } from './store/memory.ts';
import { createRedisStore } from './store/redis.ts';
import { connectRedis, type RedisConnections } from './store/redis-connection.ts';
import type { KeyValueStore } from './store/store.ts';
import { type KeyStore, loadKeyStore } from './tokens/key-store.ts';
import { createAccessTokenSigner } from './tokens/sign.ts';
import { type AccessTokenVerifier, createAccessTokenVerifier } from './tokens/verify.ts';

export interface AppOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Apply pending migrations before serving (default true). */
  readonly migrate?: boolean;
}

export interface App {
  readonly config: Config;
  readonly server: Server;
  readonly orm: Orm;
  readonly keys: KeyStore;
  readonly bus: RevocationBus;
  readonly revoked: RevokedSessions;
  readonly services: Services;
  readonly store: KeyValueStore;
  readonly redis: RedisConnections | undefined;
  readonly verify: AccessTokenVerifier;
  readonly logger: Logger;
  /** Starts listening on config.port (0 picks a free port); resolves to the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config);
  const orm = await createOrm(config.database);
  let redis: RedisConnections | undefined;
  try {
    redis = config.redisUrl ? await connectRedis(config.redisUrl, logger) : undefined;
    const store = redis ? createRedisStore(redis.commands) : createMemoryStore(clock);
    if (options.migrate !== false) await migrate(orm);
    const keys = await loadKeyStore(config);
    const bus = createMemoryRevocationBus();
    const revoked = new RevokedSessions(clock, config.accessTokenTtlMs + config.jwt.clockToleranceMs);
    bus.subscribe((event) => {
      for (const id of event.sessionIds) revoked.add(id, event.revokedAt);
    });
    await revoked.load(orm.em.fork() as Em);

    const sign = createAccessTokenSigner(keys, config, clock);
    const verify = createAccessTokenVerifier(
      keys,
      { ...config, clockToleranceMs: config.jwt.clockToleranceMs },
      clock,
      (sid) => revoked.has(sid),
    );
    const services: Services = {
      clock,
      hasher: await createPasswordHasher(config.bcryptCost),
      sessions: new Sessions(clock, sign, bus, config),
    };
    const http = createHttpServer({
      schema: buildSchema(),
      orm,
      services,
      verify,
      logger,
      graphiql: config.graphiql,
      trustProxy: config.trustProxy,
      corsOrigins: config.corsOrigins,
      plugins: [
        useWellKnown(keys, config),
        useReadiness({
          database: async () => {
            await orm.em.getConnection().execute('select 1');
          },
          ...(redis ? { redis: async () => void (await redis?.commands.ping()) } : {}),
        }),
      ],
    });

    return {
      config,
      server: http.server,
      orm,
      keys,
      bus,
      revoked,
      services,
      store,
      redis,
      verify,
      logger,
      listen: () =>
        new Promise((resolve, reject) => {
          http.server.once('error', reject);
          http.server.listen(config.port, config.host, () => {
            const address = http.server.address();
            const port = typeof address === 'object' && address ? address.port : config.port;
            const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
            resolve(`http://${host.includes(':') ? `[${host}]` : host}:${port}`);
          });
        }),
      async close() {
        await http.close();
        revoked.close();
        await bus.close();
        await redis?.close();
        await orm.close();
      },
    };
  } catch (error) {
    await redis?.close();
    await orm.close();
    throw error;
  }
}
