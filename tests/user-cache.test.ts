// The per-instance user-row cache, through the public API of two instances sharing a database and Redis: a change
// made on one is seen by the other's next read after the change's response, also while Redis is down and after it
// is back, and with reads in flight during the change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { USER_CACHE_MAX_AGE_MS } from '../src/db/user-cache.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { ed25519Pem } from './support/expect.ts';
import { errorCode, type Gql, me, type Payload, registerUser, signIn } from './support/graphql.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';
import { type CapturedMail, type SmtpCapture, startSmtpServer } from './support/smtp.ts';
import { eventually } from './support/subscriptions.ts';

const MAIL_ENV = { MAIL_FROM: 'Acme <no-reply@acme.test>', PRODUCT_NAME: 'Acme', APP_URL: 'https://app.acme.test/' };
const PROFILE = 'id email emailVerified displayName';
const UPDATE_PROFILE = 'mutation($name: String) { updateProfile(input: { displayName: $name }) { id displayName } }';
const ENTITY = 'query($reps: [_Any!]!) { _entities(representations: $reps) { ... on User { id email roles } } }';

interface Profile {
  id: string;
  email: string;
  emailVerified: boolean;
  displayName: string | null;
}

const profile = async (gql: Gql, token: string): Promise<Profile> => {
  const response = await me<Profile>(gql, token, PROFILE);
  if (!response.data?.me) throw new Error(`me failed: ${JSON.stringify(response.errors)}`);
  return response.data.me;
};

/** The code in a mail's text body: the indented line of 6 characters from the code alphabet. */
function codeOf(mail: CapturedMail): string {
  const match = /^ {4}([A-HJ-NP-Z2-9]{6})$/m.exec(mail.text);
  if (!match?.[1]) throw new Error(`no code in mail: ${mail.text}`);
  return match[1];
}

describe.skipIf(!serviceAvailable('redis-server'))('the user cache across two instances', () => {
  describe.each(dialects())('on %s', (dialect) => {
    let redis: RunningService;
    let smtp: SmtpCapture;
    let a: TestApp;
    let b: TestApp;
    // B's clock: real time, moved ahead by hand (only by the last test: tokens B issues afterwards would be from
    // A's future).
    let ahead = 0;
    const clock = { now: () => Date.now() + ahead };

    beforeAll(async () => {
      redis = await startRedis();
      smtp = await startSmtpServer();
      const env = { REDIS_URL: redis.url, JWT_PRIVATE_KEY: ed25519Pem(), SMTP_URL: smtp.url, ...MAIL_ENV };
      a = await startTestApp({ dialect, env });
      b = await startTestApp({ dialect, env, clock, databaseUrl: a.databaseUrl, migrate: false });
    });

    afterAll(async () => {
      await b?.close();
      await a?.close();
      await smtp?.close();
      await redis?.stop();
    });

    /** Changes a display name behind the service's back (plain SQL, not through the ORM): no instance is told. */
    const renameBehindTheBack = (userId: string, name: string) =>
      a.app.orm.em.getConnection().execute('update users set display_name = ? where id = ?', [name, userId]);

    const rename = async (gql: Gql, user: Payload, name: string) => {
      const response = await gql(UPDATE_PROFILE, { name }, { token: user.accessToken });
      expect(response.data).toEqual({ updateProfile: { id: user.user.id, displayName: name } });
    };

    /** An admin, made so straight in the database (through the ORM, so the caches are told), signed in on B. */
    async function adminOnB(): Promise<Payload> {
      const admin = await registerUser(a.gql);
      const em = a.app.orm.em.fork() as Em;
      const row = await em.findOneOrFail(User, { id: admin.user.id });
      row.roles = 'USER,ADMIN';
      await em.flush();
      return signIn(b.gql, admin.user.email, admin.password);
    }

    it('serves a user read on B from its cache (a change no instance was told of is not seen)', async () => {
      const user = await registerUser(a.gql, { displayName: 'Ada' });
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'Ada' });
      await renameBehindTheBack(user.user.id, 'Behind');
      // B answers from its cache; A had not cached the row, so it reads the database.
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'Ada' });
      expect(await profile(a.gql, user.accessToken)).toMatchObject({ displayName: 'Behind' });
    });

    it("shows on B a display name changed on A, on B's next read after A's response", async () => {
      const user = await registerUser(a.gql, { displayName: 'Before' });
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'Before' });
      expect(await profile(a.gql, user.accessToken)).toMatchObject({ displayName: 'Before' });
      await rename(a.gql, user, 'After');
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'After' });
      expect(await profile(a.gql, user.accessToken)).toMatchObject({ displayName: 'After' });
      // And the other way round.
      await rename(b.gql, user, 'Again');
      expect(await profile(a.gql, user.accessToken)).toMatchObject({ displayName: 'Again' });
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'Again' });
    });

    it('shows on B an email verified on A', async () => {
      const user = await registerUser(a.gql);
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ emailVerified: false });
      const requested = await a.gql('mutation { requestEmailVerification }', {}, { token: user.accessToken });
      expect(requested.data).toEqual({ requestEmailVerification: true });
      const code = codeOf(await smtp.waitForMail(user.user.email));
      const verified = await a.gql(
        'mutation($code: String!) { verifyEmail(code: $code) { id emailVerified } }',
        { code },
        { token: user.accessToken },
      );
      expect(verified.data).toEqual({ verifyEmail: { id: user.user.id, emailVerified: true } });
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ emailVerified: true });
    });

    it('shows on B the email verified by a password reset on A', async () => {
      const user = await registerUser(a.gql);
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ emailVerified: false });
      const requested = await a.gql('mutation($email: String!) { requestPasswordReset(email: $email) }', {
        email: user.user.email,
      });
      expect(requested.data).toEqual({ requestPasswordReset: true });
      const code = codeOf(await smtp.waitForMail(user.user.email));
      const reset = await a.gql('mutation($input: ResetPasswordInput!) { resetPassword(input: $input) }', {
        input: { email: user.user.email, code, newPassword: 'a new password 1' },
      });
      expect(reset.data).toEqual({ resetPassword: true });
      const again = await signIn(b.gql, user.user.email, 'a new password 1');
      expect(await profile(b.gql, again.accessToken)).toMatchObject({ id: user.user.id, emailVerified: true });
    });

    it("shows on B roles changed on A, and a user deleted on A is gone from B's reads", async () => {
      const admin = await adminOnB();
      const target = await registerUser(a.gql);
      const reps = { reps: [{ __typename: 'User', id: target.user.id }] };
      const read = () => b.gql<{ _entities: unknown[] }>(ENTITY, reps, { token: admin.accessToken });
      expect((await read()).data).toEqual({
        _entities: [{ id: target.user.id, email: target.user.email, roles: ['USER'] }],
      });

      const adminOnA = await signIn(a.gql, admin.user.email, 'correct horse battery');
      const granted = await a.gql(
        'mutation($id: ID!) { setUserRoles(userId: $id, roles: [USER, ADMIN]) { id roles } }',
        { id: target.user.id },
        { token: adminOnA.accessToken },
      );
      expect(granted.data).toEqual({ setUserRoles: { id: target.user.id, roles: ['USER', 'ADMIN'] } });
      expect((await read()).data).toEqual({
        _entities: [{ id: target.user.id, email: target.user.email, roles: ['USER', 'ADMIN'] }],
      });

      const deleted = await a.gql(
        'mutation($password: String) { deleteAccount(password: $password) }',
        { password: target.password },
        { token: target.accessToken },
      );
      expect(deleted.data).toEqual({ deleteAccount: true });
      expect((await read()).data).toEqual({ _entities: [null] });
      expect(errorCode(await me(b.gql, target.accessToken, PROFILE))).toBe('UNAUTHENTICATED');
    });

    it('never keeps a row read while a change commits (reads in flight on B during each change on A)', async () => {
      const user = await registerUser(a.gql, { displayName: 'round 0' });
      for (let round = 1; round <= 10; round++) {
        const inFlight = Array.from({ length: 20 }, () => profile(b.gql, user.accessToken));
        await rename(a.gql, user, `round ${round}`);
        await Promise.all(inFlight);
        expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: `round ${round}` });
      }
    });

    it('never serves a stale row while Redis is down, and caches correctly again once it is back', async () => {
      const user = await registerUser(a.gql, { displayName: 'Before' });
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'Before' });

      await redis.kill?.();
      await rename(a.gql, user, 'During');
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'During' });
      // Read again (nothing may have been cached meanwhile), then changed again.
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'During' });
      await rename(a.gql, user, 'Still during');
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'Still during' });
      // Not cached while Redis is down: a change behind the service's back is seen at once.
      await renameBehindTheBack(user.user.id, 'Behind during');
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'Behind during' });

      await redis.start?.();
      await eventually(() => a.app.bus.live() && b.app.bus.live(), 15_000);
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'Behind during' });
      await rename(a.gql, user, 'After');
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'After' });
      // Cached again: B keeps serving its row when no instance is told of a change.
      await renameBehindTheBack(user.user.id, 'Behind after');
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'After' });
      await rename(a.gql, user, 'Last');
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'Last' });
    });

    it('reads a cached row again once it is a minute old (a change made outside the service)', async () => {
      const user = await registerUser(a.gql, { displayName: 'Cached' });
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'Cached' });
      await renameBehindTheBack(user.user.id, 'Outside');
      ahead += USER_CACHE_MAX_AGE_MS - 1000;
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'Cached' });
      ahead += 1000;
      expect(await profile(b.gql, user.accessToken)).toMatchObject({ displayName: 'Outside' });
    });
  });
});

describe.each(dialects())('the user cache at its bound, on %s', (dialect) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ dialect, env: { USER_CACHE_SIZE: '2' } });
  });
  afterAll(() => t?.close());

  /** Changes a display name behind the service's back (plain SQL): only a read of the database shows it. */
  const renameBehindTheBack = (userId: string, name: string) =>
    t.app.orm.em.getConnection().execute('update users set display_name = ? where id = ?', [name, userId]);

  it('keeps at most USER_CACHE_SIZE rows, the least recently read going first', async () => {
    const [first, second, third] = await Promise.all(
      ['First', 'Second', 'Third'].map((displayName) => registerUser(t.gql, { displayName })),
    );
    if (!first || !second || !third) throw new Error('registration failed');
    const name = async (user: Payload) => (await profile(t.gql, user.accessToken)).displayName;
    // Read in this order, the first read again last: the second is now the least recently read.
    expect(await name(first)).toBe('First');
    expect(await name(second)).toBe('Second');
    expect(await name(first)).toBe('First');
    // A third row takes the second's place.
    expect(await name(third)).toBe('Third');
    for (const user of [first, second, third]) await renameBehindTheBack(user.user.id, 'Behind');
    // Served from the cache: the first and the third (read in this order, so that neither read evicts the other).
    expect(await name(first)).toBe('First');
    expect(await name(third)).toBe('Third');
    // Read again from the database: the second.
    expect(await name(second)).toBe('Behind');
  });
});
