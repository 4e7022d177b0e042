// Two instances of the app as a small fleet has them: one database, one throwaway Redis between them, one signing
// key, so that what one instance writes, publishes or signs the other reads, hears and accepts.
import { type Dialect, startTestApp, type TestApp } from './app.ts';
import { ed25519Pem } from './expect.ts';
import { type RunningService, startRedis } from './services.ts';

export interface InstancePair {
  readonly one: TestApp;
  readonly two: TestApp;
  readonly redis: RunningService;
  /** The environment both were started with (REDIS_URL, JWT_PRIVATE_KEY): for a third instance. */
  readonly env: Record<string, string>;
  /** Stops both instances, then Redis. */
  close(): Promise<void>;
}

/** Starts Redis, then instance one on a fresh `dialect` database (it migrates), then instance two on the same. */
export async function startInstancePair(dialect: Dialect): Promise<InstancePair> {
  const redis = await startRedis();
  const env = { REDIS_URL: redis.url, JWT_PRIVATE_KEY: ed25519Pem() };
  let one: TestApp | undefined;
  try {
    one = await startTestApp({ dialect, env });
    const two = await startTestApp({ dialect, env, databaseUrl: one.databaseUrl });
    const first = one;
    return {
      one: first,
      two,
      redis,
      env,
      async close() {
        await two.close();
        await first.close();
        await redis.stop();
      },
    };
  } catch (error) {
    await one?.close();
    await redis.stop();
    throw error;
  }
}
