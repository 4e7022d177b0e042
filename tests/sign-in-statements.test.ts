// Sign-in's compiled statements (src/db/session-opening.ts, findUserByEmail): the session row they INSERT is the
// row the ORM wrote, dates read back by the Kysely paths are the instants written (whatever the process's time
// zone), and the by-email lookup answers as the ORM's. Through GraphQL, on SQLite and MariaDB.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, Session } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { kysely } from '../src/db/tables.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import {
  errorCode,
  LOGIN_MUTATION,
  loginUser,
  PAYLOAD,
  type Payload,
  REGISTER_MUTATION,
  refreshToken,
  registerUser,
  signIn,
  uniqueEmail,
} from './support/graphql.ts';
import { rowHolder, SIGN_IN_USER_LOCK } from './support/row-locks.ts';

const ORIGIN = 'https://app.example.com';

describe.each(dialects())('sign-in statements on %s', (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ dialect, env: { CORS_ORIGINS: ORIGIN } });
  });
  afterAll(() => t?.close());

  const em = () => t.app.orm.em.fork() as Em;
  const rawSession = async (id: string) =>
    (await kysely(em()).selectFrom('sessions').selectAll().where('id', '=', id).execute())[0];

  /** The same session written again by the ORM (under another id), as every sign-in wrote it before. */
  async function writtenByOrm(id: string) {
    const fork = em();
    const read = await fork.findOneOrFail(Session, { id });
    const copy = fork.create(Session, {
      id: randomUUID(),
      user: read.user,
      refreshTokenHash: read.refreshTokenHash,
      refreshGeneration: read.refreshGeneration,
      refreshTagKey: read.refreshTagKey,
      rotatedAt: read.rotatedAt,
      createdAt: read.createdAt,
      lastUsedAt: read.lastUsedAt,
      expiresAt: read.expiresAt,
      maxExpiresAt: read.maxExpiresAt,
      userAgent: read.userAgent,
      ipAddress: read.ipAddress,
      revokedAt: read.revokedAt,
      revokedReason: read.revokedReason,
      cookieBound: read.cookieBound,
      clientId: read.clientId,
    });
    await fork.flush();
    return { read, raw: await rawSession(copy.id) };
  }

  it.each([
    ['BODY', 'with a user agent', { 'user-agent': 'statement-probe/1.0' }],
    ['COOKIE', 'with a user agent', { 'user-agent': 'statement-probe/1.0' }],
    ['BODY', 'with an empty user agent', { 'user-agent': '' }],
  ] as const)('login (%s, %s) stores every session column as the ORM stores it', async (delivery, _label, headers) => {
    const account = await registerUser(t.gql);
    const response = await t.gql<{ login: Payload }>(
      LOGIN_MUTATION,
      { input: { email: account.user.email, password: account.password, tokenDelivery: delivery } },
      { headers: { origin: ORIGIN, ...headers } },
    );
    const payload = response.data?.login;
    if (!payload) throw new Error(JSON.stringify(response.errors));
    const stored = await rawSession(payload.session.id);
    const { read, raw } = await writtenByOrm(payload.session.id);
    // Column by column, in the drivers' own representation (epoch ms on SQLite, DATETIME(3) on MariaDB).
    expect({ ...stored, id: undefined }).toEqual({ ...raw, id: undefined });
    // And the instants are the ones the payload announced, to the millisecond.
    expect(read.createdAt.toISOString()).toBe(payload.session.createdAt);
    expect(read.lastUsedAt.toISOString()).toBe(payload.session.lastUsedAt);
    expect(read.expiresAt.toISOString()).toBe(payload.session.expiresAt);
    expect(read.expiresAt.toISOString()).toBe(payload.refreshTokenExpiresAt);
    expect(read.cookieBound).toBe(delivery === 'COOKIE');
    expect(read.userAgent).toBe(payload.session.userAgent);
    expect(read.userAgent).toBe(headers['user-agent']);
    expect(read.ipAddress).toBe(payload.session.ipAddress);
    expect(read.clientId).toBe('default');
    expect(read.refreshGeneration).toBe(0);
    expect(read.rotatedAt).toBeNull();
    expect(read.revokedAt).toBeNull();
    // Listed as the payload said, from the stored row.
    const listed = await t.gql<{ me: { sessions: Payload['session'][] } }>(
      '{ me { sessions { id createdAt lastUsedAt expiresAt userAgent ipAddress } } }',
      {},
      { token: payload.accessToken },
    );
    const { current: _current, ...announced } = payload.session;
    expect(listed.data?.me.sessions.find((s) => s.id === payload.session.id)).toEqual(announced);
  });

  it('register stores its session as the ORM stores it, and the LOGIN_SUCCEEDED row of a login is whole', async () => {
    const email = uniqueEmail('stmt');
    const registered = await t.gql<{ register: Payload }>(
      REGISTER_MUTATION,
      { input: { email, password: 'correct horse battery' } },
      { headers: { 'user-agent': 'reg-probe' } },
    );
    const payload = registered.data?.register;
    if (!payload) throw new Error(JSON.stringify(registered.errors));
    const stored = await rawSession(payload.session.id);
    const { raw } = await writtenByOrm(payload.session.id);
    expect({ ...stored, id: undefined }).toEqual({ ...raw, id: undefined });

    const login = await signIn(t.gql, email, 'correct horse battery', { 'user-agent': 'audit-probe' });
    const rows = await em().find(AuditEvent, { sessionId: login.session.id });
    expect(rows.map((row) => [row.type, row.userId, row.ipAddress, row.userAgent, row.detail])).toEqual([
      ['LOGIN_SUCCEEDED', payload.user.id, login.session.ipAddress, 'audit-probe', null],
    ]);
    // Stamped when the password was found right, just before the session's transaction.
    const at = rows[0]?.createdAt.getTime() ?? 0;
    expect(Date.parse(login.session.createdAt) - at).toBeGreaterThanOrEqual(0);
    expect(Date.parse(login.session.createdAt) - at).toBeLessThan(60_000);
  });

  it('finds the account by email as registration does: the same answers for case, spaces and Unicode forms', async () => {
    const local = `jos\u00e9-${randomUUID().slice(0, 8)}`;
    const email = `${local}@example.com`;
    const account = await registerUser(t.gql, { email });
    const unknown = await loginUser(t.gql, uniqueEmail('nobody'), account.password);
    expect(errorCode(unknown)).toBe('INVALID_CREDENTIALS');
    const variants = [
      [email.toUpperCase(), true],
      [`  ${email}\t`, true],
      [email.normalize('NFD'), true],
      [`${local.replace('\u00e9', 'e')}@example.com`, false],
      [`${local.replace('\u00e9', 'E\u0301')}@EXAMPLE.COM`, true],
    ] as const;
    for (const [variant, same] of variants) {
      const login = await loginUser(t.gql, variant, account.password);
      const taken = await t.gql(REGISTER_MUTATION, { input: { email: variant, password: 'another horse battery' } });
      // Registration's check (the ORM's count) and login's statement agree on whether it is that account.
      expect([variant, errorCode(taken) === 'EMAIL_TAKEN']).toEqual([variant, same]);
      if (same) {
        expect(login.data?.login.user.id).toBe(account.user.id);
      } else {
        expect(errorCode(login)).toBe('INVALID_CREDENTIALS');
        expect(login.errors?.[0]?.message).toBe(unknown.errors?.[0]?.message);
      }
    }
  });
});

// mysql2 hands DATETIME(3) columns over as text ('2026-11-30 11:00:00.123', UTC as written): read as local time,
// every Kysely-read date shifts by the process's offset. Tokyo is 9 hours ahead: a refresh token of 1 hour would
// read as expired 8 hours before it was issued.
describe.each(dialects())('sign-in and refresh in a process on Asia/Tokyo time on %s', (dialect) => {
  let t: TestApp;
  const zone = process.env.TZ;
  beforeAll(async () => {
    process.env.TZ = 'Asia/Tokyo';
    t = await startTestApp({ dialect, env: { REFRESH_TOKEN_TTL: '1h' } });
  });
  afterAll(async () => {
    await t?.close();
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  });

  it('login answers with the account as it was written', async () => {
    expect(new Date(2026, 0, 1).getTimezoneOffset()).toBe(-540);
    const account = await registerUser(t.gql);
    const login = await signIn(t.gql, account.user.email, account.password);
    expect(login.user.createdAt).toBe(account.user.createdAt);
  });

  it('refresh takes a token of 1 hour right after sign-in, and it and me read the instants that were written', async () => {
    const account = await registerUser(t.gql);
    const refreshed = await refreshToken(t.gql, account.refreshToken);
    expect(errorCode(refreshed)).toBeUndefined();
    expect(refreshed.data?.refresh.session.createdAt).toBe(account.session.createdAt);
    expect(refreshed.data?.refresh.user.createdAt).toBe(account.user.createdAt);
    const me = await t.gql<{ me: { createdAt: string } }>('{ me { createdAt } }', {}, { token: account.accessToken });
    expect(me.data?.me.createdAt).toBe(account.user.createdAt);
  });
});

// A password sign-in checks the password before its transaction; a password change (or reset) that commits after
// that check and before the sign-in takes the user row's lock revokes every session there is, which the sign-in's
// is not yet. The interleaving is forced on MariaDB by holding the user row from another connection until the
// change waits for it and the sign-in waits behind it (SQLite runs one write transaction at a time: no window).
describe.each(dialects().filter((dialect) => dialect === 'mysql'))(
  'a login racing a password change on %s',
  (dialect) => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp({ dialect });
    });
    afterAll(() => t?.close());

    it('opens no session with the password the change replaced', async () => {
      const account = await registerUser(t.gql);
      const holder = await rowHolder(t.databaseUrl);
      try {
        await holder.holdUser(account.user.id);
        const change = t.gql<{ changePassword: Payload }>(
          `mutation($input: ChangePasswordInput!) { changePassword(input: $input) { ${PAYLOAD} } }`,
          { input: { currentPassword: account.password, newPassword: 'a brand new passphrase' } },
          { token: account.accessToken },
        );
        await holder.waitingOn('update `users` set `password_hash`%');
        // Checked against the password still stored (the change has not committed), then waits behind the change.
        const login = loginUser(t.gql, account.user.email, account.password);
        await holder.waitingOn(SIGN_IN_USER_LOCK);
        await holder.release();
        const changed = await change;
        expect(errorCode(changed)).toBeUndefined();
        const result = await login;
        expect(errorCode(result)).toBe('INVALID_CREDENTIALS');
        // The only session left is the one the change kept (the caller's, with its new refresh token).
        const live = await (t.app.orm.em.fork() as Em).find(Session, { user: account.user.id, revokedAt: null });
        expect(live.map((session) => session.id)).toEqual([account.session.id]);
        const events = await (t.app.orm.em.fork() as Em).find(
          AuditEvent,
          { userId: account.user.id, type: { $in: ['LOGIN_SUCCEEDED', 'LOGIN_FAILED'] } },
          { orderBy: { id: 'asc' } },
        );
        expect(events.map((event) => [event.type, event.detail])).toEqual([
          ['LOGIN_FAILED', JSON.stringify({ reason: 'WRONG_PASSWORD' })],
        ]);
      } finally {
        await holder.end();
      }
    });
  },
);
