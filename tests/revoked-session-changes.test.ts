// A change asked for by a session that is revoked while the request runs (a second factor enrolled, a role
// granted): its access token was good when the request came in, but once the revocation has been answered the
// change must not land (a stolen session thrown out by its owner must not leave an authenticator, a passkey or an
// admin of its own behind). Forced on
// MariaDB by holding the user row from another connection, so that the change waits at its lock while the
// revocation commits and is answered (SQLite runs one write transaction at a time, and its driver is synchronous
// in this process: no window to hold).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MfaTotp, RecoveryCode, User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { expectUnauthenticated } from './support/expect.ts';
import type { FakeGitHub } from './support/github.ts';
import { loginUser, type Payload, registerUser, signIn } from './support/graphql.ts';
import { CONFIRM_TOTP, START_TOTP, totpCode } from './support/mfa.ts';
import { authorize, githubAccount, REDIRECT, startProviders, type TestProviders } from './support/oauth.ts';
import type { TestOidcProvider } from './support/oidc.ts';
import { MFA_CHANGE_USER_LOCK, rowHolder } from './support/row-locks.ts';

const mariadb = dialects().filter((dialect) => dialect === 'mysql');

describe.each(mariadb)('a second-factor change racing the revocation of its session, on %s', (dialect) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ dialect });
  });

  afterAll(async () => {
    await t?.close();
  });

  /**
   * Registers an account (the owner's session) and signs in a second session (the intruder's), which starts a TOTP
   * enrolment; then sends its confirmation with the user row held until it waits there, runs `meanwhile`, and lets
   * it go. Resolves to the confirmation's answer and what the account has afterwards.
   */
  async function confirmHeld(meanwhile: (owner: Payload, intruder: Payload) => Promise<void>) {
    const account = await registerUser(t.gql);
    const intruder = (await loginUser(t.gql, account.user.email, account.password)).data?.login as Payload;
    const started = await t.gql<{ startTotpEnrollment: { secret: string } }>(
      START_TOTP,
      {},
      { token: intruder.accessToken },
    );
    const secret = started.data?.startTotpEnrollment.secret as string;
    const holder = await rowHolder(t.databaseUrl);
    try {
      await holder.holdUser(account.user.id);
      let ended = false;
      const confirm = t
        .gql<{ confirmTotpEnrollment: { codes: string[] } }>(
          CONFIRM_TOTP,
          { code: totpCode(secret, Date.now()) },
          { token: intruder.accessToken },
        )
        .finally(() => {
          ended = true;
        });
      await holder.waitingOn(MFA_CHANGE_USER_LOCK, () => ended);
      expect(ended).toBe(false);
      await meanwhile(account, intruder);
      await holder.release();
      const answer = await confirm;
      const em = t.app.orm.em.fork() as Em;
      const totp = await em.findOne(MfaTotp, { user: account.user.id });
      const codes = await em.count(RecoveryCode, { user: account.user.id });
      return { answer, enabled: Boolean(totp?.confirmedAt), codes };
    } finally {
      await holder.end();
    }
  }

  it("is refused once the session's revocation has been answered: no authenticator, no recovery codes", async () => {
    const { answer, enabled, codes } = await confirmHeld(async (owner, intruder) => {
      const revoked = await t.gql(
        'mutation($id: ID!) { revokeSession(id: $id) }',
        { id: intruder.session.id },
        { token: owner.accessToken },
      );
      expect(revoked.data).toEqual({ revokeSession: true });
    });
    expectUnauthenticated(answer, 'SESSION_REVOKED');
    expect({ enabled, codes }).toEqual({ enabled: false, codes: 0 });
  });

  it("an admin's role grant is refused once the admin's session has been revoked: no one is made an admin", async () => {
    const admin = await signInAsAdmin(t);
    const other = await signIn(t.gql, admin.user.email, 'correct horse battery');
    const target = await registerUser(t.gql);
    const holder = await rowHolder(t.databaseUrl);
    try {
      // The grant's transaction locks the target's and the admins' user rows first: it waits there.
      await holder.holdUser(target.user.id);
      let ended = false;
      const grant = t
        .gql(
          'mutation($id: ID!, $roles: [Role!]!) { setUserRoles(userId: $id, roles: $roles) { id roles } }',
          { id: target.user.id, roles: ['USER', 'ADMIN'] },
          { token: admin.accessToken },
        )
        .finally(() => {
          ended = true;
        });
      await holder.waitingOn(MFA_CHANGE_USER_LOCK, () => ended);
      expect(ended).toBe(false);
      const revoked = await t.gql(
        'mutation($id: ID!) { revokeSession(id: $id) }',
        { id: admin.session.id },
        { token: other.accessToken },
      );
      expect(revoked.data).toEqual({ revokeSession: true });
      await holder.release();
      expectUnauthenticated(await grant, 'SESSION_REVOKED');
      const row = await (t.app.orm.em.fork() as Em).findOne(User, { id: target.user.id });
      expect(row?.roles).toBe('USER');
    } finally {
      await holder.end();
    }
  });

  it('goes through when nothing revokes the session meanwhile (the control)', async () => {
    const { answer, enabled, codes } = await confirmHeld(async () => {});
    expect(answer.errors).toBeUndefined();
    expect(answer.data?.confirmTotpEnrollment.codes).toHaveLength(10);
    expect({ enabled, codes }).toEqual({ enabled: true, codes: 10 });
  });
});

describe.each(mariadb)('a provider linked by a session that is being revoked, on %s', (dialect) => {
  let t: TestApp;
  let oidc: TestOidcProvider;
  let github: FakeGitHub;
  let providers: TestProviders;

  beforeAll(async () => {
    providers = await startProviders();
    ({ oidc, github } = providers);
    t = await startTestApp({ dialect, env: { OAUTH_REDIRECT_URIS: REDIRECT, ...providers.env } });
  });

  afterAll(async () => {
    await t?.close();
    await providers?.stop();
  });

  it('the revocation is answered only once the link has committed: never the link after the answer', async () => {
    const account = await registerUser(t.gql);
    const intruder = (await loginUser(t.gql, account.user.email, account.password)).data?.login as Payload;
    const provider = githubAccount();
    const callback = await authorize({ gql: t.gql, oidc, github }, 'github', provider, intruder.accessToken);
    const holder = await rowHolder(t.databaseUrl);
    // Another transaction holds the provider account's unique key, so the link's INSERT (its last statement before
    // commit, after its checks) waits there; the link's check of its session is then behind it.
    const { createConnection } = await import('mysql2/promise');
    const blocker = await createConnection(t.databaseUrl);
    const bystander = await registerUser(t.gql);
    try {
      await blocker.beginTransaction();
      await blocker.query(
        'INSERT INTO linked_accounts (id, user_id, provider, provider_user_id, email, linked_at) VALUES (?, ?, ?, ?, NULL, NOW(3))',
        [randomUUID(), bystander.user.id, 'github', String(provider.id)],
      );
      let linkEnded = false;
      const link = t
        .gql(
          'mutation($input: OAuthCodeInput!) { linkOAuthProvider(input: $input) { id } }',
          { input: callback },
          {
            token: intruder.accessToken,
          },
        )
        .finally(() => {
          linkEnded = true;
        });
      await holder.waitingOn('insert into `linked_accounts`%', () => linkEnded);
      expect(linkEnded).toBe(false);

      // The owner throws the intruder's session out meanwhile.
      let revocationEnded = false;
      const revocation = t
        .gql(
          'mutation($id: ID!) { revokeSession(id: $id) }',
          { id: intruder.session.id },
          { token: account.accessToken },
        )
        .finally(() => {
          revocationEnded = true;
        });
      await holder.waitingOn('select%from `sessions`%for update%', () => revocationEnded);
      // It waits for the link: had it been answered now, the link would land after the answer.
      expect(revocationEnded).toBe(false);

      await blocker.rollback();
      const linked = await link;
      expect(linked.errors).toBeUndefined();
      expect((await revocation).data).toEqual({ revokeSession: true });
      // The link came first; the revocation after it ended the session that made it.
      expectUnauthenticated(await t.gql('{ me { id } }', {}, { token: intruder.accessToken }), 'SESSION_REVOKED');
    } finally {
      await blocker.end();
      await holder.end();
    }
  });
});
