// A change asked for by a session that is revoked while the request runs (a second factor enrolled, a role
// granted, a profile edited, a passkey renamed, an email verified): its access token was good when the request
// came in, but once the revocation has been answered the change must not land (a stolen session thrown out by its
// owner must not leave an authenticator, a passkey or an admin of its own behind). Forced on MariaDB by holding
// the user row from another connection, so that the change waits at its lock while the revocation commits and is
// answered (SQLite runs one write transaction at a time, and its driver is synchronous in this process: no window
// to hold).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, MfaTotp, Passkey, RecoveryCode, User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { expectUnauthenticated } from './support/expect.ts';
import type { FakeGitHub } from './support/github.ts';
import { type GraphQLResponse, loginUser, PAYLOAD, type Payload, registerUser, signIn } from './support/graphql.ts';
import { CONFIRM_TOTP, START_TOTP, totpCode } from './support/mfa.ts';
import { authorize, githubAccount, REDIRECT, startProviders, type TestProviders } from './support/oauth.ts';
import type { TestOidcProvider } from './support/oidc.ts';
import { type PasskeyBrowser, registerPasskey, startPasskeyBrowser } from './support/passkey-browser.ts';
import { MFA_CHANGE_USER_LOCK, type RowHolder, rowHolder } from './support/row-locks.ts';
import { serviceAvailable } from './support/services.ts';
import { mailedCode, type SmtpCapture, startSmtpServer } from './support/smtp.ts';

const mariadb = dialects().filter((dialect) => dialect === 'mysql');

/** Revokes `intruder`'s session from `owner`'s, and waits for the answer. */
async function revokeFrom(t: TestApp, owner: Payload, intruder: Payload): Promise<void> {
  const revoked = await t.gql(
    'mutation($id: ID!) { revokeSession(id: $id) }',
    { id: intruder.session.id },
    { token: owner.accessToken },
  );
  expect(revoked.data).toEqual({ revokeSession: true });
}

/** Resolves once a statement like one of `patterns` runs on another connection, or once `unless()` is true. */
async function waitingOnAny(holder: RowHolder, patterns: readonly string[], unless: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (unless()) return;
    for (const pattern of patterns) if ((await holder.running(pattern)) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`nothing waits on ${patterns.join(' or ')}`);
}

/**
 * Holds the rows `lockingRead` locks, sends `change` and waits until it queues behind them: at the user row's lock
 * the change takes first, or, had it none, at its write (`writesAt`), so that what it does after the revocation
 * is seen either way. Then runs `meanwhile` and lets the change go. Resolves to its answer and whether it waited.
 */
async function changeWhileHeld<T>(
  t: TestApp,
  hold: { readonly lockingRead: string; readonly params: readonly unknown[]; readonly writesAt: string },
  change: () => Promise<GraphQLResponse<T>>,
  meanwhile: () => Promise<void>,
): Promise<{ answer: GraphQLResponse<T>; waited: boolean }> {
  const holder = await rowHolder(t.databaseUrl);
  try {
    await holder.hold(hold.lockingRead, hold.params);
    let ended = false;
    const running = change().finally(() => {
      ended = true;
    });
    // Handled where it is awaited; kept from counting as unhandled meanwhile.
    running.catch(() => {});
    await waitingOnAny(holder, [MFA_CHANGE_USER_LOCK, hold.writesAt], () => ended);
    const waited = !ended;
    await meanwhile();
    await holder.release();
    return { answer: await running, waited };
  } finally {
    await holder.end();
  }
}

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

const UPDATE_PROFILE = 'mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { id displayName } }';

describe.each(mariadb)('a profile edit racing the revocation of its session, on %s', (dialect) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ dialect });
  });

  afterAll(async () => {
    await t?.close();
  });

  /**
   * An account (the owner's session, display name Ada) and a second session (the intruder's), which renames the
   * account while its user row is held; `meanwhile` runs while it waits. Its answer, and the account afterwards.
   */
  async function editHeld(meanwhile: (owner: Payload, intruder: Payload) => Promise<void>) {
    const owner = await registerUser(t.gql, { displayName: 'Ada' });
    const intruder = await signIn(t.gql, owner.user.email, owner.password);
    const { answer, waited } = await changeWhileHeld(
      t,
      {
        lockingRead: 'SELECT id FROM users WHERE id = ? FOR UPDATE',
        params: [owner.user.id],
        writesAt: 'update `users`%',
      },
      () =>
        t.gql<{ updateProfile: { id: string; displayName: string | null } }>(
          UPDATE_PROFILE,
          { input: { displayName: 'Mallory' } },
          { token: intruder.accessToken },
        ),
      () => meanwhile(owner, intruder),
    );
    const em = t.app.orm.em.fork() as Em;
    const row = await em.findOneOrFail(User, { id: owner.user.id });
    const audited = await em.count(AuditEvent, { userId: owner.user.id, type: 'PROFILE_UPDATED' });
    return { answer, waited, displayName: row.displayName, audited };
  }

  it("is refused once the session's revocation has been answered: the name stays, nothing is audited", async () => {
    const { answer, waited, displayName, audited } = await editHeld((owner, intruder) =>
      revokeFrom(t, owner, intruder),
    );
    expectUnauthenticated(answer, 'SESSION_REVOKED');
    expect({ displayName, audited }).toEqual({ displayName: 'Ada', audited: 0 });
    expect(waited).toBe(true);
  });

  it('goes through when nothing revokes the session meanwhile (the control)', async () => {
    const { answer, waited, displayName, audited } = await editHeld(async () => {});
    expect(answer.errors).toBeUndefined();
    expect(answer.data?.updateProfile.displayName).toBe('Mallory');
    expect({ displayName, audited }).toEqual({ displayName: 'Mallory', audited: 1 });
    expect(waited).toBe(true);
  });
});

describe.skipIf(!serviceAvailable('chromium')).each(mariadb)(
  'a passkey rename racing the revocation of its session, on %s',
  (dialect) => {
    let t: TestApp;
    let browser: PasskeyBrowser;

    beforeAll(async () => {
      browser = await startPasskeyBrowser();
      t = await startTestApp({ dialect, env: { WEBAUTHN_RP_ID: 'localhost', WEBAUTHN_ORIGINS: browser.origin } });
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      await t?.close();
    });

    /**
     * An account with a passkey (registered from the owner's session) and a second session signed in with that
     * passkey (the intruder's), which renames it while the user and passkey rows are held; `meanwhile` runs while
     * it waits. Its answer, and the passkey's name before and after.
     */
    async function renameHeld(meanwhile: (owner: Payload, intruder: Payload) => Promise<void>) {
      const owner = await registerUser(t.gql);
      const passkeyId = await registerPasskey(t.gql, browser, owner.accessToken);
      const challenge = await t.gql<{ startPasskeyLogin: { challengeId: string; options: unknown } }>(
        'mutation($e: String) { startPasskeyLogin(email: $e) { challengeId options } }',
        { e: owner.user.email },
      );
      const { challengeId, options } = challenge.data?.startPasskeyLogin ?? {};
      if (!challengeId) throw new Error(JSON.stringify(challenge.errors));
      const response = await browser.authenticate(options);
      const signedIn = await t.gql<{ loginWithPasskey: Payload }>(
        `mutation($i: PasskeyLoginInput!) { loginWithPasskey(input: $i) { ${PAYLOAD} } }`,
        { i: { challengeId, response } },
      );
      const intruder = signedIn.data?.loginWithPasskey;
      if (!intruder) throw new Error(JSON.stringify(signedIn.errors));
      const nameOf = async () => (await (t.app.orm.em.fork() as Em).findOneOrFail(Passkey, { id: passkeyId })).name;
      const before = await nameOf();
      const { answer, waited } = await changeWhileHeld(
        t,
        {
          lockingRead: 'SELECT u.id FROM users u JOIN passkeys p ON p.user_id = u.id WHERE p.id = ? FOR UPDATE',
          params: [passkeyId],
          writesAt: 'update `passkeys`%',
        },
        () =>
          t.gql<{ renamePasskey: { id: string; name: string | null } }>(
            'mutation($id: ID!, $name: String) { renamePasskey(id: $id, name: $name) { id name } }',
            { id: passkeyId, name: 'Intruder key' },
            { token: intruder.accessToken },
          ),
        () => meanwhile(owner, intruder),
      );
      return { answer, waited, before, after: await nameOf() };
    }

    it("is refused once the session's revocation has been answered: the passkey keeps its name", async () => {
      const { answer, waited, before, after } = await renameHeld((owner, intruder) => revokeFrom(t, owner, intruder));
      expectUnauthenticated(answer, 'SESSION_REVOKED');
      expect(after).toBe(before);
      expect(after).not.toBe('Intruder key');
      expect(waited).toBe(true);
    }, 60_000);

    it('goes through when nothing revokes the session meanwhile (the control)', async () => {
      const { answer, waited, after } = await renameHeld(async () => {});
      expect(answer.errors).toBeUndefined();
      expect(answer.data?.renamePasskey.name).toBe('Intruder key');
      expect(after).toBe('Intruder key');
      expect(waited).toBe(true);
    }, 60_000);
  },
);

describe.each(mariadb)('an email verification racing the revocation of its session, on %s', (dialect) => {
  let t: TestApp;
  let smtp: SmtpCapture;

  beforeAll(async () => {
    smtp = await startSmtpServer();
    t = await startTestApp({ dialect, env: { SMTP_URL: smtp.url } });
  });

  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  /**
   * An account (the owner's session) and a second session (the intruder's), which asks for a verification code
   * and sends it while the user row is held; `meanwhile` runs while it waits. Its answer, and the account after.
   */
  async function verifyHeld(meanwhile: (owner: Payload, intruder: Payload) => Promise<void>) {
    const owner = await registerUser(t.gql);
    const intruder = await signIn(t.gql, owner.user.email, owner.password);
    const requested = await t.gql('mutation { requestEmailVerification }', {}, { token: intruder.accessToken });
    expect(requested.data).toEqual({ requestEmailVerification: true });
    const code = mailedCode(await smtp.waitForMail(owner.user.email));
    const { answer, waited } = await changeWhileHeld(
      t,
      {
        lockingRead: 'SELECT id FROM users WHERE id = ? FOR UPDATE',
        params: [owner.user.id],
        writesAt: 'update `users`%',
      },
      () =>
        t.gql<{ verifyEmail: { emailVerified: boolean } }>(
          'mutation($code: String!) { verifyEmail(code: $code) { emailVerified } }',
          { code },
          { token: intruder.accessToken },
        ),
      () => meanwhile(owner, intruder),
    );
    const em = t.app.orm.em.fork() as Em;
    const row = await em.findOneOrFail(User, { id: owner.user.id });
    const audited = await em.count(AuditEvent, { userId: owner.user.id, type: 'EMAIL_VERIFIED' });
    return { answer, waited, verified: row.emailVerified, audited };
  }

  it("is refused once the session's revocation has been answered: the email stays unverified", async () => {
    const { answer, waited, verified, audited } = await verifyHeld((owner, intruder) => revokeFrom(t, owner, intruder));
    expectUnauthenticated(answer, 'SESSION_REVOKED');
    expect({ verified, audited }).toEqual({ verified: false, audited: 0 });
    expect(waited).toBe(true);
  });

  it('goes through when nothing revokes the session meanwhile (the control)', async () => {
    const { answer, waited, verified, audited } = await verifyHeld(async () => {});
    expect(answer.errors).toBeUndefined();
    expect(answer.data?.verifyEmail.emailVerified).toBe(true);
    expect({ verified, audited }).toEqual({ verified: true, audited: 1 });
    expect(waited).toBe(true);
  });
});
