// Every revocation path racing a refresh of the same session, 30 rounds each, on both databases: the
// revocation answers success, neither side answers INTERNAL_SERVER_ERROR, and the session ends revoked
// whichever side won (a refreshed token pair of a revoked session is refused too).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session, User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { expectUnauthenticated } from './support/expect.ts';
import {
  errorCode,
  type Gql,
  type GraphQLResponse,
  type Payload,
  refreshToken,
  registerUser,
  revokeSession,
  signIn,
  uniqueEmail,
} from './support/graphql.ts';

const ROUNDS = 30;
const PASSWORD = 'correct horse battery';

interface Round {
  /** The session whose refresh races the revocation. */
  victim: Payload;
  /** Runs the revocation; its answer must carry no error. */
  revoke(): Promise<GraphQLResponse>;
}

describe.each(dialects())('revocation racing refresh on %s', (dialect) => {
  let t: TestApp;
  let admin: Payload;
  const gql: Gql = (query, variables, options) => t.gql(query, variables, options);

  beforeAll(async () => {
    t = await startTestApp({ dialect });
    const email = uniqueEmail('race-admin');
    await registerUser(gql, { email, password: PASSWORD });
    await (t.app.orm.em.fork() as Em).nativeUpdate(User, { email }, { roles: 'USER,ADMIN' });
    admin = await signIn(gql, email, PASSWORD);
  });
  afterAll(() => t?.close());

  async function newAccount(): Promise<Payload & { email: string }> {
    const email = uniqueEmail('race');
    return { ...(await registerUser(gql, { email, password: PASSWORD })), email };
  }

  /** Races `round.revoke()` against a refresh of the victim's session and checks the outcome. */
  async function race(round: Round) {
    const [revoked, refreshed] = await Promise.all([round.revoke(), refreshToken(gql, round.victim.refreshToken)]);
    expect(revoked.errors, JSON.stringify(revoked.errors)).toBeUndefined();
    if (refreshed.errors) {
      expect(errorCode(refreshed)).toBe('UNAUTHENTICATED');
    }
    // Whichever won, nothing of the session works any more.
    expectUnauthenticated(await gql('{ me { id } }', {}, { token: round.victim.accessToken }), 'SESSION_REVOKED');
    const rotated = refreshed.data?.refresh as Payload | undefined;
    if (rotated) {
      expectUnauthenticated(await gql('{ me { id } }', {}, { token: rotated.accessToken }), 'SESSION_REVOKED');
      const again = await refreshToken(gql, rotated.refreshToken);
      expect(errorCode(again)).toBe('UNAUTHENTICATED');
    }
  }

  const paths: [string, () => Promise<Round>][] = [
    [
      'logout',
      async () => {
        const victim = await newAccount();
        return { victim, revoke: () => gql('mutation { logout }', {}, { token: victim.accessToken }) };
      },
    ],
    [
      'revokeSession from another session',
      async () => {
        const victim = await newAccount();
        const other = await signIn(gql, victim.email, PASSWORD);
        return {
          victim,
          revoke: () => revokeSession(gql, victim.session.id, other.accessToken),
        };
      },
    ],
    [
      'revokeOtherSessions',
      async () => {
        const victim = await newAccount();
        const other = await signIn(gql, victim.email, PASSWORD);
        return { victim, revoke: () => gql('mutation { revokeOtherSessions }', {}, { token: other.accessToken }) };
      },
    ],
    [
      'changePassword from another session',
      async () => {
        const victim = await newAccount();
        const other = await signIn(gql, victim.email, PASSWORD);
        return {
          victim,
          revoke: () =>
            gql(
              'mutation($input: ChangePasswordInput!) { changePassword(input: $input) { accessToken } }',
              { input: { currentPassword: PASSWORD, newPassword: 'another horse battery' } },
              { token: other.accessToken },
            ),
        };
      },
    ],
    [
      'revokeUserSessions (admin)',
      async () => {
        const victim = await newAccount();
        return {
          victim,
          revoke: () =>
            gql(
              'mutation($id: ID!) { revokeUserSessions(userId: $id) }',
              { id: victim.user.id },
              { token: admin.accessToken },
            ),
        };
      },
    ],
    [
      'setUserRoles removing a role',
      async () => {
        const victim = await newAccount();
        await (t.app.orm.em.fork() as Em).nativeUpdate(User, { id: victim.user.id }, { roles: 'USER,ADMIN' });
        const promoted = await signIn(gql, victim.email, PASSWORD);
        return {
          victim: promoted,
          revoke: () =>
            gql(
              'mutation($id: ID!) { setUserRoles(userId: $id, roles: [USER]) { id } }',
              { id: victim.user.id },
              { token: admin.accessToken },
            ),
        };
      },
    ],
    [
      'deleteAccount',
      async () => {
        const victim = await newAccount();
        return {
          victim,
          revoke: () =>
            gql('mutation($p: String) { deleteAccount(password: $p) }', { p: PASSWORD }, { token: victim.accessToken }),
        };
      },
    ],
  ];

  it.each(paths)(
    `%s racing refresh: ${ROUNDS} rounds, revocation always succeeds and wins`,
    async (_name, setUp) => {
      for (let i = 0; i < ROUNDS; i++) await race(await setUp());
    },
    120_000,
  );

  it('a password change against 30 refreshes of the other sessions in flight: every other session ends revoked', async () => {
    const user = await newAccount();
    const others = await Promise.all(Array.from({ length: 30 }, () => signIn(gql, user.email, PASSWORD)));
    const [changed, ...refreshed] = await Promise.all([
      gql(
        'mutation($input: ChangePasswordInput!) { changePassword(input: $input) { session { id } } }',
        { input: { currentPassword: PASSWORD, newPassword: 'a new password 1' } },
        { token: user.accessToken },
      ),
      ...others.map((other) => refreshToken(gql, other.refreshToken)),
    ]);
    expect(changed.errors, JSON.stringify(changed.errors)).toBeUndefined();
    // Each refresh either went first (and its session was revoked after it) or was refused; none failed inside.
    for (const response of refreshed) if (response.errors) expect(errorCode(response)).toBe('UNAUTHENTICATED');
    const ids = others.map((other) => other.session.id);
    const sessions = await (t.app.orm.em.fork() as Em).find(Session, { id: { $in: ids } });
    expect(sessions.filter((session) => session.revokedReason !== 'PASSWORD_CHANGED').map((s) => s.id)).toEqual([]);
    for (const response of refreshed) {
      const rotated = response.data?.refresh as Payload | undefined;
      if (rotated) expectUnauthenticated(await refreshToken(gql, rotated.refreshToken), 'SESSION_REVOKED');
    }
  }, 60_000);
});
