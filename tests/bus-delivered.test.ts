// The Redis bus tells its subscribers of each revoked session once, however often it is delivered (the bus, then
// the database's reconciliation): it remembers the last MAX_DELIVERED_REMEMBERED sessions, the oldest out first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_DELIVERED_REMEMBERED } from '../src/events/redis.ts';
import type { SessionRevokedEvent } from '../src/events/revocation-bus.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';

describe.skipIf(!serviceAvailable('redis-server'))('sessions delivered twice on the Redis bus', () => {
  let redis: RunningService;
  let t: TestApp;
  const heard: string[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    t = await startTestApp({ env: { REDIS_URL: redis.url } });
    t.app.bus.subscribe((event) => heard.push(...event.sessionIds));
  });

  afterAll(async () => {
    await t?.close();
    await redis?.stop();
  });

  const deliver = (sessionIds: string[]) => {
    const event: SessionRevokedEvent = { userId: null, sessionIds, reason: 'LOGOUT', revokedAt: Date.now() };
    const before = heard.length;
    t.app.bus.deliverLocally(event);
    return heard.slice(before);
  };

  it('are told once while remembered, and again once forgotten, the oldest first', () => {
    const prefix = `delivered-${Date.now()}-`;
    const ids = Array.from({ length: MAX_DELIVERED_REMEMBERED + 1 }, (_, i) => `${prefix}${i}`);
    expect(deliver(ids)).toHaveLength(ids.length);
    const id = (i: number) => ids[i] as string;
    // The first of them is forgotten already; the second is the oldest remembered.
    expect(deliver([id(1)])).toEqual([]);
    expect(deliver([id(MAX_DELIVERED_REMEMBERED)])).toEqual([]);
    expect(deliver([id(0)])).toEqual([id(0)]);
    // Remembered again, in the place of the oldest (the second), however recently that was delivered.
    expect(deliver([id(0)])).toEqual([]);
    expect(deliver([id(2)])).toEqual([]);
    expect(deliver([id(1)])).toEqual([id(1)]);
    // Part of an event remembered, part not: only the part not remembered is told.
    expect(deliver([id(3), `${prefix}new`])).toEqual([`${prefix}new`]);
  });
});
