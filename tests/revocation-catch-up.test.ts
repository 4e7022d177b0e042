// The catch-up after a bus outage reads every revocation the instance may have missed. When that read fails (the
// database down as well), it is tried again until it succeeds: the bus being live again is no reason to stop, since
// what was revoked during the outage (minutes ago, by now) will never come through it.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrm, type Em } from '../src/db/orm.ts';
import { createMemoryRevocationBus } from '../src/events/memory.ts';
import type { SessionRevokedEvent } from '../src/events/revocation-bus.ts';
import { RECONCILE_WINDOW_MS, RevokedSessions } from '../src/sessions/revoked-sessions.ts';
import { databaseUrl, dialects, startTestApp, type TestApp } from './support/app.ts';
import { TestClock } from './support/clock.ts';
import { registerUser, revokeSession, signIn } from './support/graphql.ts';
import { eventually } from './support/subscriptions.ts';

describe.each(dialects())('revocation catch-up on %s', (dialect) => {
  let service: TestApp;

  beforeAll(async () => {
    service = await startTestApp({ dialect });
  });

  afterAll(async () => {
    await service?.close();
  });

  /** A revoked-session set on a test clock, and a memory bus whose deliveries are kept in `heard`. */
  function listener(logger = pino({ level: 'silent' })) {
    const clock = new TestClock();
    const revoked = new RevokedSessions(clock, { accessTokenTtlMs: 15 * 60_000, clockToleranceMs: 5_000 });
    const bus = createMemoryRevocationBus(logger);
    const heard: SessionRevokedEvent[] = [];
    bus.subscribe((event) => heard.push(event));
    return { clock, revoked, bus, heard };
  }

  /**
   * A database that cannot answer the set's reads: one without the service's tables (a server restored empty, or
   * not the right one), through a real ORM. `name` tells SQLite files apart.
   */
  async function unreachableDatabase(name: string) {
    const configured = service.app.config.database;
    if (configured.dialect === 'sqlite') return createOrm({ dialect: 'sqlite', path: join(service.dir, name) });
    const url = await databaseUrl('mysql', service.dir);
    return createOrm({ ...configured, url, dbName: new URL(url).pathname.slice(1) });
  }

  /** Revokes a new session through the service (the set under test hears nothing of it); returns its id. */
  async function revokedSessionId(): Promise<string> {
    const user = await registerUser(service.gql);
    const victim = await signIn(service.gql, user.user.email, user.password);
    const answer = await revokeSession(service.gql, victim.session.id, user.accessToken);
    expect(answer.data).toEqual({ revokeSession: true });
    return victim.session.id;
  }

  it('a catch-up whose read failed is read again, while the bus is live, until it succeeds', async () => {
    const logs: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line) => logs.push(line) });
    const { clock, revoked, bus, heard } = listener(logger);
    const down = await unreachableDatabase('empty.sqlite');
    try {
      // The instance reconnects to Redis while the database is down: its catch-up read fails.
      await revoked.catchUp(bus, () => down.em.fork() as Em, logger);
      expect(logs.some((line) => line.includes('could not reload revocations'))).toBe(true);

      // A revocation made during the bus outage, older by now than what the live reads look back on.
      const sessionId = await revokedSessionId();
      clock.advance(RECONCILE_WINDOW_MS + 60_000);
      expect(revoked.has(sessionId)).toBe(false);

      // The database answers again; the bus is live all along.
      revoked.poll(bus, () => service.app.orm.em.fork() as Em, logger, 50);
      // Told to listeners once the whole read is done (the set knows it a moment before, mid-read).
      await eventually(() => heard.length > 0, 10_000);
      expect(revoked.has(sessionId)).toBe(true);
      expect(heard.map((event) => event.sessionIds)).toEqual([[sessionId]]);
    } finally {
      revoked.close();
      await down.close(true);
    }
  });

  it('reads that failed for longer than the reconcile window, the bus live all along: the next one reads everything', async () => {
    const logger = pino({ level: 'silent' });
    const { clock, revoked, bus, heard } = listener(logger);
    const down = await unreachableDatabase('empty-too.sqlite');
    let database = down;
    try {
      // Every read fails (the database unreachable from this instance), Redis up.
      revoked.poll(bus, () => database.em.fork() as Em, logger, 50);
      // Meanwhile a revocation is committed that this instance never hears of (its instance stopped before
      // publishing), and the outage lasts longer than what the live reads look back on.
      const sessionId = await revokedSessionId();
      await new Promise((resolve) => setTimeout(resolve, 300));
      clock.advance(RECONCILE_WINDOW_MS + 60_000);

      // The database answers again: the revocation, 3 minutes old, still covers live tokens.
      database = service.app.orm;
      // (The database also holds the revocation of the test before, which this set never heard of either.)
      await eventually(() => heard.some((event) => event.sessionIds.includes(sessionId)), 5_000);
      expect(revoked.has(sessionId)).toBe(true);
    } finally {
      revoked.close();
      await down.close(true);
    }
  });

  it("learns a dead instance's revocation of more sessions than one statement may name (SQLite: 32766)", async () => {
    const logger = pino({ level: 'silent' });
    const { clock, revoked, bus, heard } = listener(logger);
    const user = await registerUser(service.gql);
    // A client disabled with 33,000 sessions open, by an instance that stopped before publishing it.
    const now = clock.now();
    const count = 33_000;
    const ids = Array.from({ length: count }, () => randomUUID());
    const connection = service.app.orm.em.getConnection();
    // As the ORM binds a datetime: epoch milliseconds on SQLite, a Date for mysql2.
    const at = (ms: number) => (dialect === 'sqlite' ? ms : new Date(ms));
    for (let i = 0; i < count; i += 500) {
      const chunk = ids.slice(i, i + 500);
      await connection.execute(
        `insert into sessions (id, user_id, refresh_token_hash, refresh_tag_key, created_at, last_used_at, expires_at, max_expires_at, revoked_at, revoked_reason) values ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
        chunk.flatMap((id) => [
          id,
          user.user.id,
          'h'.repeat(64),
          'k'.repeat(43),
          at(now - 60_000),
          at(now - 60_000),
          at(now + 3_600_000),
          at(now + 3_600_000),
          at(now - 10_000),
          'CLIENT_DISABLED',
        ]) as never,
      );
    }
    // Only these sessions: the database also holds the tests' before, which this set may find in its window too.
    const inserted = new Set<string>(ids);
    const told = () => heard.reduce((sum, event) => sum + event.sessionIds.filter((id) => inserted.has(id)).length, 0);
    try {
      revoked.poll(bus, () => service.app.orm.em.fork() as Em, logger, 50);
      await eventually(() => told() >= count, 15_000);
      expect(told()).toBe(count);
      expect(ids.every((id) => revoked.has(id))).toBe(true);
    } finally {
      revoked.close();
    }
  });
});
