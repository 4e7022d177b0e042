// A database outage costs no attempts (issue 12): sign-ins and password resets that fail because the account
// cannot be read are not guesses, so after the database returns the right password (or code) gets in at once,
// while the limits still hold. MariaDB really stopped and restarted; and on SQLite and MariaDB the users table
// renamed away from under the app by another connection, so the lookup fails for real. At the default limits.
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Dialect, dialects, startTestApp, type TestApp } from './support/app.ts';
import { expectRateLimited } from './support/expect.ts';
import { errorCode, type GraphQLResponse, loginUser, registerUser } from './support/graphql.ts';
import { createDatabase, type RunningService, serviceAvailable, startMariaDb } from './support/services.ts';
import { mailedCode, type SmtpCapture, startSmtpServer } from './support/smtp.ts';
import { eventually } from './support/subscriptions.ts';

const REQUEST_RESET = 'mutation($email: String!) { requestPasswordReset(email: $email) }';
const RESET = 'mutation($input: ResetPasswordInput!) { resetPassword(input: $input) }';

/** The documented defaults (API.md): 5 failed sign-ins per account per 15 minutes, 10 code tries. */
const ACCOUNT_LIMIT = 5;
const CODE_LIMIT = 10;
const WINDOW_SECONDS = 15 * 60;

interface Database {
  /** Starts the app on this database. */
  app(env: Record<string, string>): Promise<TestApp>;
  /** Makes every read of an account fail, until `up`. */
  down(t: TestApp): Promise<void>;
  up(t: TestApp): Promise<void>;
  close(): Promise<void>;
}

/** A MariaDB server of this test's own, stopped and started again on the same data. */
function restartedMariadb(): Database {
  let server: RunningService | undefined;
  return {
    async app(env) {
      server = await startMariaDb();
      return startTestApp({ dialect: 'mysql', databaseUrl: await createDatabase(server, 'outage'), env });
    },
    async down() {
      if (!server?.kill) throw new Error('tools/services.ts cannot stop MariaDB');
      await server.kill();
    },
    async up(t) {
      await server?.start?.();
      // Back once the app's own readiness check reaches it again.
      await eventually(async () => (await fetch(`${t.url}/readyz`)).status === 200, 30_000);
    },
    async close() {
      await server?.stop();
    },
  };
}

/** The users table renamed away by another connection (foreign keys follow it) and back. */
function renamedTable(dialect: Dialect): Database {
  const rename = async (t: TestApp, from: string, to: string) => {
    if (dialect === 'sqlite') {
      const db = new DatabaseSync(t.databaseUrl.replace(/^sqlite:/, ''));
      try {
        db.exec(`PRAGMA busy_timeout = 5000; ALTER TABLE ${from} RENAME TO ${to}`);
      } finally {
        db.close();
      }
      return;
    }
    const { createConnection } = await import('mysql2/promise');
    const connection = await createConnection(t.databaseUrl);
    try {
      await connection.query(`RENAME TABLE ${from} TO ${to}`);
    } finally {
      await connection.end();
    }
  };
  return {
    app: (env) => startTestApp({ dialect, env }),
    down: (t) => rename(t, 'users', 'users_away'),
    up: (t) => rename(t, 'users_away', 'users'),
    close: async () => {},
  };
}

const databases = [
  ...dialects().map((dialect) => ({ name: `${dialect}, users table renamed away`, open: () => renamedTable(dialect) })),
  ...(serviceAvailable('mariadbd') ? [{ name: 'MariaDB stopped and restarted', open: restartedMariadb }] : []),
];

describe.each(databases)('while the database cannot read accounts ($name), and after', ({ open }) => {
  const database = open();
  let smtp: SmtpCapture;
  let t: TestApp;

  beforeAll(async () => {
    smtp = await startSmtpServer();
    t = await database.app({
      // The defaults, not the test launcher's generous limits.
      RATE_LIMIT_LOGIN_ACCOUNT: '',
      RATE_LIMIT_LOGIN_IP: '',
      RATE_LIMIT_CODE_ATTEMPTS: '',
      SMTP_URL: smtp.url,
    });
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
    await database.close();
  });

  /** Every answer's error code ('OK' for none), in order. */
  const codes = (responses: readonly GraphQLResponse[]) => responses.map((r) => errorCode(r) ?? 'OK');

  async function sequentially<T>(n: number, make: (i: number) => Promise<T>): Promise<T[]> {
    const results: T[] = [];
    for (let i = 0; i < n; i++) results.push(await make(i));
    return results;
  }

  /** Runs `work` with the accounts unreadable; the database comes back whatever happens. */
  async function whileDown<T>(work: () => Promise<T>): Promise<T> {
    await database.down(t);
    try {
      return await work();
    } finally {
      await database.up(t);
    }
  }

  it('sign-ins that fail while it is down cost no attempt: the right password then gets in at once', async () => {
    const user = await registerUser(t.gql);
    const email = user.user.email;
    const failed = await whileDown(async () => {
      // A client retrying, one after another and then several at once: more than the account's limit in all.
      const retries = await sequentially(2 * ACCOUNT_LIMIT, () => loginUser(t.gql, email, user.password));
      const burst = await Promise.all(
        Array.from({ length: ACCOUNT_LIMIT }, (_, i) => loginUser(t.gql, email, `wrong password ${i}`)),
      );
      return [...retries, ...burst];
    });
    // Back: the right password signs in at once (it was RATE_LIMITED for 15 minutes when the outage counted).
    const signedIn = await loginUser(t.gql, email, user.password);
    expect(errorCode(signedIn)).toBeUndefined();
    expect(signedIn.data?.login.user.id).toBe(user.user.id);
    // While down, the server failed (masked), and said nothing about the password nor about a limit.
    expect(codes(failed)).toEqual(Array(3 * ACCOUNT_LIMIT).fill('INTERNAL_SERVER_ERROR'));

    // The limit still holds for real guesses: five wrong passwords, then even the right one is refused.
    const guesses = await sequentially(ACCOUNT_LIMIT, (i) => loginUser(t.gql, email, `wrong password ${i}`));
    expect(codes(guesses)).toEqual(Array(ACCOUNT_LIMIT).fill('INVALID_CREDENTIALS'));
    expectRateLimited(await loginUser(t.gql, email, user.password), WINDOW_SECONDS);
  });

  it('password resets that fail while it is down cost no code attempt: the right code then works at once', async () => {
    const user = await registerUser(t.gql);
    const email = user.user.email;
    expect((await t.gql(REQUEST_RESET, { email })).data).toEqual({ requestPasswordReset: true });
    const code = mailedCode(await smtp.waitForMail(email));
    const reset = (newPassword: string) => t.gql(RESET, { input: { email, code, newPassword } });

    const retries = await whileDown(() => sequentially(CODE_LIMIT + 2, () => reset('a brand new password')));
    const done = await reset('a brand new password');
    expect([errorCode(done), done.data]).toEqual([undefined, { resetPassword: true }]);
    expect(codes(retries)).toEqual(Array(CODE_LIMIT + 2).fill('INTERNAL_SERVER_ERROR'));
    const signedIn = await loginUser(t.gql, email, 'a brand new password');
    expect(signedIn.data?.login.user.id).toBe(user.user.id);
  });
});
