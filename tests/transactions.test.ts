// Transient database conflicts are retried: which errors count as transient, and a real deadlock on MariaDB
// (and a real busy SQLite) that ends with both transactions committed.
import { DeadlockException, LockWaitTimeoutException, UniqueConstraintViolationException } from '@mikro-orm/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvent } from '../src/audit/audit.ts';
import { AuditEvent, Session, User, type UserRow } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { insertAuditEvent } from '../src/db/session-opening.ts';
import { isTransientConflict, retryTransient, TRANSACTION_ATTEMPTS, transactional } from '../src/db/transaction.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { registerUser } from './support/graphql.ts';

describe('isTransientConflict', () => {
  it('counts deadlocks, lock-wait timeouts and a busy or locked SQLite, from the ORM or raw from the driver', () => {
    expect(isTransientConflict(new DeadlockException(new Error('deadlock')))).toBe(true);
    expect(isTransientConflict(new LockWaitTimeoutException(new Error('lock wait')))).toBe(true);
    expect(isTransientConflict(Object.assign(new Error('x'), { errno: 1213, code: 'ER_LOCK_DEADLOCK' }))).toBe(true);
    expect(isTransientConflict(Object.assign(new Error('x'), { errno: 1205 }))).toBe(true);
    // SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT (517), SQLITE_LOCKED.
    for (const errcode of [5, 517, 6])
      expect(isTransientConflict(Object.assign(new Error('x'), { errcode }))).toBe(true);
  });

  it('does not count other errors', () => {
    expect(isTransientConflict(new UniqueConstraintViolationException(new Error('dup')))).toBe(false);
    expect(isTransientConflict(Object.assign(new Error('x'), { errno: 1062 }))).toBe(false);
    expect(isTransientConflict(Object.assign(new Error('x'), { errcode: 19 }))).toBe(false);
    expect(isTransientConflict(new Error('database is down'))).toBe(false);
    expect(isTransientConflict(undefined)).toBe(false);
  });

  it('gives up after TRANSACTION_ATTEMPTS runs and passes the conflict on', async () => {
    let runs = 0;
    const conflict = Object.assign(new Error('deadlock'), { errno: 1213 });
    await expect(
      retryTransient(async () => {
        runs++;
        throw conflict;
      }),
    ).rejects.toBe(conflict);
    expect(runs).toBe(TRANSACTION_ATTEMPTS);
  });
});

describe.each(dialects())('transactions on %s', (dialect) => {
  let t: TestApp;
  const em = () => t.app.orm.em.fork() as Em;

  beforeAll(async () => {
    t = await startTestApp({ dialect });
    await em().execute('create table retry_probe (id int primary key, n int not null)');
    await em().execute('insert into retry_probe (id, n) values (1, 0), (2, 0)');
  });
  afterAll(() => t?.close());

  it('commits both of two transactions that conflict, re-running the one the database refused', async () => {
    let runs = 0;
    // Each locks one row, waits until the other has locked its row, then wants the other's: on MariaDB a
    // deadlock, on SQLite a busy database for the second writer. Only the first run of each waits.
    let arrived = 0;
    let release: () => void = () => {};
    const bothLocked = new Promise<void>((resolve) => {
      release = resolve;
    });
    const meet = async () => {
      arrived++;
      if (arrived === 2) release();
      await Promise.race([bothLocked, new Promise((resolve) => setTimeout(resolve, 500))]);
    };
    const crossing = (first: number, second: number) =>
      transactional(em(), async (tx) => {
        const run = ++runs;
        await tx.execute('update retry_probe set n = n + 1 where id = ?', [first]);
        if (run <= 2) await meet();
        await tx.execute('update retry_probe set n = n + 1 where id = ?', [second]);
      });
    await Promise.all([crossing(1, 2), crossing(2, 1)]);
    const rows = await em().execute<{ id: number; n: number }[]>('select id, n from retry_probe order by id');
    // Each transaction committed exactly once: two increments per row.
    expect(rows.map((row) => Number(row.n))).toEqual([2, 2]);
    if (dialect === 'mysql') expect(runs).toBeGreaterThan(2);
  });

  it('leaves neither the session nor its audit row of a sign-in whose transaction rolls back', async () => {
    const { user } = await registerUser(t.gql);
    const meta = { ipAddress: '203.0.113.9', userAgent: 'rollback-probe' };
    const sessionsBefore = await em().count(Session, { user: user.id });
    const auditsBefore = await em().count(AuditEvent, { userId: user.id });
    const row = (await em().findOneOrFail(User, { id: user.id })) as UserRow;
    let opened: string | undefined;
    await expect(
      transactional(em(), async (tx) => {
        const session = await t.app.services.sessions.open(tx, row, meta, 'BODY', 'existing');
        await insertAuditEvent(
          tx,
          auditEvent(meta, { type: 'LOGIN_SUCCEEDED', userId: user.id, sessionId: session.row.id }, new Date()),
        );
        opened = session.row.id;
        // Seen inside the transaction: the statements ran on its connection.
        expect(await tx.count(Session, { id: session.row.id })).toBe(1);
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(opened).toBeDefined();
    expect(await em().count(Session, { id: opened })).toBe(0);
    expect(await em().count(Session, { user: user.id })).toBe(sessionsBefore);
    expect(await em().count(AuditEvent, { userId: user.id })).toBe(auditsBefore);
  });
});
