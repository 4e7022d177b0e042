// A passkey sign-in racing the removal of its passkey: the assertion is checked before the sign-in's transaction,
// and a removal that commits in between revokes every session there is, which the sign-in's is not yet. Forced on
// MariaDB by holding the user row from another connection until the sign-in's locking read waits on it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, Session } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { errorCode, PAYLOAD, type Payload, registerUser } from './support/graphql.ts';
import { type PasskeyBrowser, startPasskeyBrowser } from './support/passkey-browser.ts';
import { serviceAvailable } from './support/services.ts';

// MariaDB only. The app runs in the test's own process, on node:sqlite's synchronous driver: a write lock held on the
// file from here would stall the app's event loop, not just its transaction, and SQLite runs one write transaction
// at a time, so on SQLite there is no window between the assertion's check and the session to hold open.
describe.skipIf(!serviceAvailable('chromium')).each(dialects().filter((dialect) => dialect === 'mysql'))(
  'a passkey sign-in racing its removal on %s',
  (dialect) => {
    let t: TestApp;
    let browser: PasskeyBrowser;

    beforeAll(async () => {
      browser = await startPasskeyBrowser();
      t = await startTestApp({
        dialect,
        env: { WEBAUTHN_RP_ID: 'localhost', WEBAUTHN_ORIGINS: browser.origin },
      });
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      await t?.close();
    });

    const em = () => t.app.orm.em.fork() as Em;

    it('opens no session once the passkey is removed: INVALID_CREDENTIALS, LOGIN_FAILED UNKNOWN_PASSKEY', async () => {
      const account = await registerUser(t.gql);
      const started = await t.gql<{ startPasskeyRegistration: unknown }>(
        'mutation { startPasskeyRegistration }',
        {},
        { token: account.accessToken },
      );
      const registered = await t.gql<{ finishPasskeyRegistration: { id: string } }>(
        'mutation($r: JSON!) { finishPasskeyRegistration(response: $r) { id } }',
        { r: await browser.register(started.data?.startPasskeyRegistration) },
        { token: account.accessToken },
      );
      const passkeyId = registered.data?.finishPasskeyRegistration.id;
      if (!passkeyId) throw new Error(JSON.stringify(registered.errors));
      // A real assertion by that passkey, for a challenge bound to the account.
      const challenge = await t.gql<{ startPasskeyLogin: { challengeId: string; options: unknown } }>(
        'mutation($e: String) { startPasskeyLogin(email: $e) { challengeId options } }',
        { e: account.user.email },
      );
      const { challengeId, options } = challenge.data?.startPasskeyLogin ?? {};
      if (!challengeId) throw new Error(JSON.stringify(challenge.errors));
      const response = await browser.authenticate(options);

      const { createConnection } = await import('mysql2/promise');
      const holder = await createConnection(t.databaseUrl);
      // How many statements of the app's (other connections) are running that look like `statement`.
      const running = async (statement: string) => {
        const [rows] = await holder.query(
          'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE id <> CONNECTION_ID() AND info LIKE ?',
          [statement],
        );
        return Number((rows as { n: number }[])[0]?.n);
      };
      const waitingOn = async (statement: string) => {
        for (let i = 0; i < 500; i++) {
          if ((await running(statement)) > 0) return;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        throw new Error(`nothing waits on ${statement}`);
      };
      // The sign-in's locking read of the user row (src/db/session-opening.ts), the first statement of its
      // transaction, after the assertion was checked.
      const LOCK_USER = 'select%from `users`%lock in share mode%';
      try {
        await holder.beginTransaction();
        await holder.query('SELECT id FROM users WHERE id = ? FOR UPDATE', [account.user.id]);
        const signIn = t.gql<{ loginWithPasskey: Payload }>(
          `mutation($i: PasskeyLoginInput!) { loginWithPasskey(input: $i) { ${PAYLOAD} } }`,
          { i: { challengeId, response } },
        );
        await waitingOn(LOCK_USER);
        // The removal takes no lock on the user row: it commits while the sign-in waits, revoking every session
        // but the caller's (there is no other yet).
        const removed = await t.gql<{ removePasskey: { passkeys: { id: string }[] } }>(
          'mutation($id: ID!) { removePasskey(id: $id) { passkeys { id } } }',
          { id: passkeyId },
          { token: account.accessToken },
        );
        expect(errorCode(removed)).toBeUndefined();
        expect(removed.data?.removePasskey.passkeys).toEqual([]);
        // The interleaving took place: the sign-in still waits, its session not yet written.
        expect(await running(LOCK_USER)).toBe(1);
        await holder.rollback();
        const result = await signIn;
        expect(errorCode(result)).toBe('INVALID_CREDENTIALS');
        expect(result.data?.loginWithPasskey ?? null).toBeNull();
      } finally {
        await holder.end();
      }

      // The only active session is the one that removed the passkey.
      const live = await em().find(Session, { user: account.user.id, revokedAt: null });
      expect(live.map((session) => session.id)).toEqual([account.session.id]);
      const sessions = await em().find(Session, { user: account.user.id });
      expect(sessions.map((session) => session.id)).toEqual([account.session.id]);
      const events = await em().find(
        AuditEvent,
        { userId: account.user.id, type: { $in: ['LOGIN_SUCCEEDED', 'LOGIN_FAILED'] } },
        { orderBy: { id: 'asc' } },
      );
      const passkeyEvents = events
        .map((event) => ({ type: event.type, detail: JSON.parse(event.detail ?? '{}') }))
        .filter((event) => event.detail.method === 'PASSKEY');
      expect(passkeyEvents).toEqual([
        { type: 'LOGIN_FAILED', detail: { method: 'PASSKEY', reason: 'UNKNOWN_PASSKEY', passkeyId } },
      ]);
    }, 60_000);
  },
);
