// createApp(config): builds every part once, wires them, and returns the server and how to close it.
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { OneTimeCodes } from './account/codes.ts';
import { createPasswordHasher } from './auth/passwords.ts';
import { cannotConnect, passwordOf } from './cannot-connect.ts';
import { ClientCredentialsGrant } from './clients/client-credentials.ts';
import { ClientRegistry } from './clients/registry.ts';
import { type Clock, systemClock } from './clock.ts';
import type { Config } from './config.ts';
import { migrate } from './db/migrate.ts';
import { createOrm, type Em, type Orm } from './db/orm.ts';
import { poolFigures } from './db/pool-figures.ts';
import { USER_CACHE_MAX_AGE_MS, UserCache } from './db/user-cache.ts';
import { UserWrites } from './db/user-writes.ts';
import { createMemoryRevocationBus } from './events/memory.ts';
import { onPublish } from './events/on-publish.ts';
import { createRedisRevocationBus } from './events/redis.ts';
import type { RevocationBus } from './events/revocation-bus.ts';
import { createMetrics, type Metrics } from './http/metrics.ts';
import { createHttpServer } from './http/server.ts';
import { GuessLimit } from './limits/attempts.ts';
import { createLimiterFactory } from './limits/limiters.ts';
import { createRateLimits } from './limits/rate-limits.ts';
import { createLogger } from './log.ts';
import { createMailer } from './mail/create.ts';
import { MfaChallenges } from './mfa/challenges.ts';
import { MfaCrypto } from './mfa/crypto.ts';
import { loadMfaKey } from './mfa/key.ts';
import { createPasskeyFactor } from './mfa/passkeys.ts';
import { WebAuthn } from './mfa/webauthn.ts';
import { createOAuth } from './oauth/oauth.ts';
import type { Services } from './schema/context.ts';
import { buildSchema } from './schema/index.ts';
import { RevocationFeed } from './sessions/revocation-feed.ts';
import { RevokedSessions } from './sessions/revoked-sessions.ts';
import { Sessions } from './sessions/sessions.ts';
import { createMemoryStore } from './store/memory.ts';
import { createRedisStore } from './store/redis.ts';
import { connectRedis, type RedisConnections } from './store/redis-connection.ts';
import type { KeyValueStore } from './store/store.ts';
import { startTracing, type Tracing } from './telemetry/tracing.ts';
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
  /** This instance's copy of the client registry. */
  readonly clients: ClientRegistry;
  readonly services: Services;
  readonly store: KeyValueStore;
  readonly redis: RedisConnections | undefined;
  readonly verify: AccessTokenVerifier;
  readonly logger: Logger;
  /** This app's Prometheus registry and counters (served on GET /metrics). */
  readonly metrics: Metrics;
  /** Starts listening on config.port (0 picks a free port); resolves to the base URL. */
  listen(): Promise<string>;
  /** Stops serving (in-flight requests get up to `graceMs`, default 10 s), then closes every connection it holds. */
  close(graceMs?: number): Promise<void>;
}

export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config);
  const orm = await createOrm(config.database).catch((error: unknown) => {
    throw cannotConnect('DATABASE_URL', error, databaseSecrets(config));
  });
  let redis: RedisConnections | undefined;
  let tracing: Tracing | undefined;
  try {
    // The first statement proves the database answers (SQLite opens lazily, a pool may connect lazily).
    await orm.em
      .getConnection()
      .execute('select 1')
      .catch((error: unknown) => {
        throw cannotConnect('DATABASE_URL', error, databaseSecrets(config));
      });
    const redisTarget = config.redisSentinel
      ? { sentinel: config.redisSentinel }
      : config.redisUrl
        ? { url: config.redisUrl }
        : undefined;
    redis = redisTarget
      ? await connectRedis(redisTarget, logger).catch((error: unknown) => {
          throw cannotConnect(config.redisSentinel ? 'REDIS_SENTINELS' : 'REDIS_URL', error, redisSecrets(config));
        })
      : undefined;
    const store = redis ? createRedisStore(redis.commands) : createMemoryStore(clock);
    if (options.migrate !== false) await migrate(orm);
    const keys = await loadKeyStore(config);
    const revoked = new RevokedSessions(clock, {
      accessTokenTtlMs: config.accessTokenTtlMs,
      clockToleranceMs: config.jwt.clockToleranceMs,
    });
    const fork = () => orm.em.fork() as Em;
    const metrics = createMetrics();
    const pool = await poolFigures(orm, config.database.dialect);
    if (pool) metrics.watchDatabasePool(pool);
    const bus: RevocationBus = onPublish(
      redis
        ? await createRedisRevocationBus(redis, logger, () => void revoked.catchUp(bus, fork, logger))
        : createMemoryRevocationBus(logger),
      (event) => metrics.countRevocation(event),
    );
    await revoked.follow(bus, fork);
    const clients = new ClientRegistry(config.audience);
    await clients.follow(bus, fork, logger);
    // While Redis is down, revocations (of sessions, of clients) made on other instances still arrive, from the
    // database; while it is up, so do those an instance committed and never published (it stopped in between).
    if (redis) revoked.poll(bus, fork, logger, 500, (em) => clients.load(em));
    const connections = redis;
    if (connections) metrics.watchRedis(() => connections.up);
    const users = new UserCache(config.userCacheSize, bus, clock, USER_CACHE_MAX_AGE_MS, orm.em as Em);
    // Every committed write of a users row is told to every instance's cache, this one's before the response.
    new UserWrites((event) => bus.publishUserChanged(event)).attach(orm);

    const sign = createAccessTokenSigner(keys, config, clock);
    const verify = createAccessTokenVerifier(
      keys,
      { ...config, clockToleranceMs: config.jwt.clockToleranceMs },
      clock,
      (claims) =>
        claims.kind === 'user' && revoked.has(claims.sid)
          ? 'SESSION_REVOKED'
          : clients.refuses(claims.client_id, claims.iat, claims.kind === 'service'),
    );
    const hasher = await createPasswordHasher(config.bcryptCost);
    const limiters = createLimiterFactory(redis?.commands);
    const limits = createRateLimits(config, limiters);
    const sessions = new Sessions(clock, sign, bus, config, limits, clients, orm.em as Em);
    const revocationFeed = new RevocationFeed({
      bus,
      clients,
      revoked,
      clock,
      tokens: { accessTokenTtlMs: config.accessTokenTtlMs, clockToleranceMs: config.jwt.clockToleranceMs },
      logger,
      onConsumersChange: (delta) => metrics.feedConsumersChanged(delta),
      onSent: (count) => metrics.countFeedEvents(count),
    });
    const clientCredentials = new ClientCredentialsGrant({
      fork,
      clients,
      sign,
      clock,
      audience: config.audience,
      limits: { perClient: limits.clientToken, perIp: limits.clientTokenIp },
    });
    const mailer = createMailer(config, logger, (kind) => metrics.countMailFailure(kind));
    tracing = config.telemetry ? await startTracing(config.telemetry) : undefined;
    const webauthn = new WebAuthn(store, clock, config.webauthn);
    const services: Services = {
      clock,
      hasher,
      sessions,
      clients,
      bus,
      limits,
      codes: new OneTimeCodes(store, clock),
      mailer,
      mail: { productName: config.mail.productName, appUrl: config.mail.appUrl },
      oauth: createOAuth(config.oauth, store, clock, logger),
      federationSdl: config.federationSdl,
      revocationFeed,
      users,
      logger,
      mfa: {
        crypto: new MfaCrypto(() => loadMfaKey(config)),
        challenges: new MfaChallenges(store, clock),
        guesses: new GuessLimit(limiters('mfa-attempts', config.rateLimits.mfaAttempts)),
        issuer: config.mail.productName,
      },
      webauthn,
      passkeyFactor: createPasskeyFactor(webauthn),
    };
    const http = createHttpServer({
      schema: buildSchema(),
      orm,
      services,
      verify,
      isRevoked: (sessionId) => revoked.has(sessionId),
      bus,
      clock,
      logger,
      clientCredentials,
      graphiql: config.graphiql,
      trustProxy: config.trustProxy,
      corsOrigins: config.corsOrigins,
      // Enabled clients' allowedOrigins, read on every decision: a disabled client's origins stop at once.
      originSources: [() => clients.allowedOrigins()],
      production: config.env === 'production',
      refreshCookie: config.refreshCookie,
      introspection: config.introspection,
      graphqlLimits: config.graphqlLimits,
      webSocket: config.webSocket,
      hsts: config.publicUrl.startsWith('https://'),
      onSubscriptionChange: (delta) => metrics.subscriptionsChanged(delta),
      tracing: tracing?.plugin,
      metrics,
      metricsToken: config.metricsToken,
      keys,
      wellKnown: config,
      readiness: {
        required: {
          database: async () => {
            await orm.em.getConnection().execute('select 1');
          },
        },
        // Without Redis the instance serves on (rate limits in memory, revocations read from the database).
        optional: redis
          ? { redis: () => (redis?.up ? redis.commands.ping().then(() => undefined) : Promise.reject()) }
          : {},
      },
    });

    return {
      config,
      server: http.server,
      orm,
      keys,
      bus,
      revoked,
      clients,
      services,
      store,
      redis,
      verify,
      logger,
      metrics,
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
      async close(graceMs) {
        await http.close(graceMs);
        // Sends the spans of the last requests before the process ends.
        await tracing?.shutdown();
        revoked.close();
        revocationFeed.close();
        clients.close();
        users.close();
        await bus.close();
        await mailer.close();
        await redis?.close();
        await orm.close();
      },
    };
  } catch (error) {
    await tracing?.shutdown();
    await redis?.close();
    await orm.close();
    throw error;
  }
}

/** What a database error must never quote: the password of DATABASE_URL. */
function databaseSecrets(config: Config): string[] {
  return config.database.dialect === 'mysql' ? [config.database.password, ...passwordOf(config.database.url)] : [];
}

/** What a Redis error must never quote: the passwords of REDIS_URL or of the sentinels and their master. */
function redisSecrets(config: Config): string[] {
  const sentinel = config.redisSentinel;
  return [...passwordOf(config.redisUrl), sentinel?.password ?? '', sentinel?.sentinelPassword ?? ''].filter(Boolean);
}
