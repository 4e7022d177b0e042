// REDIS_SENTINELS and its companions: read into the config, and every mistake named with its variable at once.
import { describe, expect, it } from 'vitest';
import { ConfigError, type Env, loadConfig } from '../src/config.ts';

const noFiles = (path: string): string => {
  throw new Error(`no file ${path}`);
};

function problems(env: Env): readonly string[] {
  try {
    loadConfig(env, noFiles);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('Redis Sentinel configuration', () => {
  it('reads the sentinels, the master name and both passwords', () => {
    const config = loadConfig(
      {
        REDIS_SENTINELS: 'sentinel-1:26379, 10.0.0.2:26380,[::1]:26381',
        REDIS_SENTINEL_NAME: 'authmaster',
        REDIS_PASSWORD: 'redis-secret',
        REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
      },
      noFiles,
    );
    expect(config.redisUrl).toBeUndefined();
    expect(config.redisSentinel).toEqual({
      sentinels: [
        { host: 'sentinel-1', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
        { host: '::1', port: 26381 },
      ],
      name: 'authmaster',
      password: 'redis-secret',
      sentinelPassword: 'sentinel-secret',
    });
  });

  it('has no sentinel configuration by default', () => {
    expect(loadConfig({}, noFiles).redisSentinel).toBeUndefined();
  });

  it('refuses a malformed entry, a missing name, a name alone, and REDIS_URL beside the sentinels', () => {
    expect(problems({ REDIS_SENTINELS: 'sentinel-1', REDIS_SENTINEL_NAME: 'm' })).toEqual([
      'REDIS_SENTINELS: expected host:port,host:port,…, got "sentinel-1"',
    ]);
    expect(problems({ REDIS_SENTINELS: 'sentinel-1:70000', REDIS_SENTINEL_NAME: 'm' })).toEqual([
      'REDIS_SENTINELS: expected host:port,host:port,…, got "sentinel-1:70000"',
    ]);
    expect(problems({ REDIS_SENTINELS: 'sentinel-1:26379' })).toEqual([
      "REDIS_SENTINEL_NAME: required with REDIS_SENTINELS (the master's name in the sentinels' config)",
    ]);
    expect(problems({ REDIS_SENTINEL_NAME: 'm' })).toEqual([
      'REDIS_SENTINEL_NAME: set only with REDIS_SENTINELS (host:port of each sentinel)',
    ]);
    expect(
      problems({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_SENTINELS: 'sentinel-1:26379', REDIS_SENTINEL_NAME: 'm' }),
    ).toEqual(['REDIS_SENTINELS: set either REDIS_URL or REDIS_SENTINELS, not both']);
  });
});
