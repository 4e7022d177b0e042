// A change asked for by a session that is revoked while the request runs (a second factor enrolled, a role
// granted, a profile edited, a passkey renamed, an email verified): its access token was good when the request
// came in, but once the revocation has been answered the change must not land (a stolen session thrown out by its
// owner must not leave an authenticator, a passkey or an admin of its own behind). Forced on MariaDB by holding
// the user row from another connection, so that the change waits at its lock while the revocation commits and is
// answered (SQLite runs one write transaction at a time, and its driver is synchronous in this process: no window
// to hold).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, MfaTotp, Passkey, RecoveryCode, Session, User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { expectUnauthenticated } from './support/expect.ts';
import type { FakeGitHub } from './support/github.ts';
import {
  extensionsOf,
  type GraphQLResponse,
  loginUser,
  PAYLOAD,
  type Payload,
  registerUser,
  revokeSession,
  signIn,
} from './support/graphql.ts';
import { CONFIRM_TOTP, START_TOTP, totpCode } from './support/mfa.ts';
import { authorize, githubAccount, REDIRECT, startProviders, type TestProviders } from './support/oauth.ts';
import type { TestOidcProvider } from './support/oidc.ts';
import { type PasskeyApp, type PasskeyBrowser, registerPasskey, startPasskeyApp } from './support/passkey-browser.ts';
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
    let app: PasskeyApp | undefined;

    beforeAll(async () => {
      app = await startPasskeyApp(dialect);
      ({ t, browser } = app);
    }, 120_000);

    afterAll(() => app?.close());

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

// Revocations asked for by a session that is itself being revoked (revokeSession, revokeOtherSessions, an admin's
// revokeUserSessions): held at the session rows they revoke rather than at a user row, which they do not take.

/** The app's locking read of session rows (Sessions.revokeIn, holdCallerSession). */
const SESSIONS_LOCK = 'select%from `sessions`%for update%';
const REVOKE_OTHER_SESSIONS = 'mutation { revokeOtherSessions }';
const REVOKE_USER_SESSIONS = 'mutation($id: ID!) { revokeUserSessions(userId: $id) }';

/** Which request's answer arrived: the racing change's, or that of the revocation of the session asking for it. */
type Answered = 'change' | 'revocation';

/**
 * Resolves once one more statement like SESSIONS_LOCK runs on another connection than `before` (it queues behind
 * a held row, as a rule), or once `ended()` is true (the request ended without waiting there).
 */
async function queuedAtSessions(holder: RowHolder, before: number, ended: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (ended() || (await holder.running(SESSIONS_LOCK)) > before) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`nothing waits on ${SESSIONS_LOCK}`);
}

/**
 * Holds the session rows `held` from another connection, sends `change` and waits until it queues behind them at
 * its locking read of sessions; then sends `revocation` (when given: the revocation of the session that asks for
 * the change) and lets the rows go once that has been answered or queues too. Resolves to both answers and the
 * order in which they arrived.
 */
async function raceAtSessions(
  t: TestApp,
  held: readonly string[],
  change: () => Promise<GraphQLResponse>,
  revocation?: () => Promise<GraphQLResponse>,
): Promise<{ change: GraphQLResponse; revocation: GraphQLResponse | undefined; answered: Answered[] }> {
  const holder = await rowHolder(t.databaseUrl);
  const answered: Answered[] = [];
  try {
    await holder.hold('SELECT id FROM sessions WHERE id IN (?) FOR UPDATE', [held]);
    const changing = change().finally(() => answered.push('change'));
    // Handled where it is awaited; kept from counting as unhandled meanwhile.
    changing.catch(() => {});
    await queuedAtSessions(holder, 0, () => answered.includes('change'));
    expect(answered, 'the change waits at the held sessions').toEqual([]);
    let revoking: Promise<GraphQLResponse> | undefined;
    if (revocation) {
      const before = await holder.running(SESSIONS_LOCK);
      revoking = revocation().finally(() => answered.push('revocation'));
      revoking.catch(() => {});
      // Answered, as a rule; it may wait instead for the change, which may hold the session it revokes already.
      await queuedAtSessions(holder, before, () => answered.includes('revocation'));
    }
    await holder.release();
    return { change: await changing, revocation: await revoking, answered };
  } finally {
    await holder.end();
  }
}

/** Which of `ids` are still active sessions. */
async function stillActive(t: TestApp, ids: readonly string[]): Promise<string[]> {
  const rows = await (t.app.orm.em.fork() as Em).find(Session, { id: { $in: [...ids] }, revokedReason: null });
  return rows.map((row) => row.id).sort();
}

/** When each of `ids` was revoked (ms since the epoch), for those revoked. */
async function revokedAt(t: TestApp, ids: readonly string[]): Promise<Map<string, number>> {
  const rows = await (t.app.orm.em.fork() as Em).find(Session, { id: { $in: [...ids] }, revokedAt: { $ne: null } });
  return new Map(rows.map((row) => [row.id, (row.revokedAt as Date).getTime()]));
}

/**
 * The class's rule for a change racing the revocation of the session that asks for it (`asker`): either the change
 * is refused (SESSION_REVOKED) and `untouched` are still active, or it committed before the revocation was
 * answered.
 */
async function expectRefusedOrFirst(
  t: TestApp,
  race: { change: GraphQLResponse; revocation?: GraphQLResponse | undefined; answered: Answered[] },
  untouched: readonly string[],
  asker: string,
  schedule: string,
): Promise<void> {
  if (race.answered[0] === 'change') {
    expect(race.answered, schedule).toEqual(['change', 'revocation']);
    return;
  }
  // The revocation's answer came first, but it was refused because its own asking session had been revoked: only
  // the change revokes that one, so the change committed first (the revocation waited for it at the rows it holds),
  // and merely answered later.
  if (race.revocation && extensionsOf(race.revocation)?.reason === 'SESSION_REVOKED') {
    expect(race.change.errors, `${schedule}: the revocation was refused, so the change went first`).toBeUndefined();
    return;
  }
  // Both went through, the revocation's answer first: the change still went first if it stamped what it revoked no
  // later than the revocation stamped the asker's session. Each stamps once it holds its rows, and the revocation
  // can take the asker's row only once the change has let it go.
  if (race.change.errors === undefined && race.revocation?.errors === undefined) {
    const stamps = await revokedAt(t, [...untouched, asker]);
    const byChange = untouched.flatMap((id) => stamps.get(id) ?? []);
    const askerAt = stamps.get(asker);
    if (askerAt !== undefined && byChange.length > 0 && Math.max(...byChange) <= askerAt) return;
  }
  const outcome = { reason: race.change.errors?.[0]?.extensions?.reason, active: await stillActive(t, untouched) };
  expect(outcome, `${schedule}: answered after the revocation of its session`).toEqual({
    reason: 'SESSION_REVOKED',
    active: [...untouched].sort(),
  });
  expectUnauthenticated(race.change, 'SESSION_REVOKED');
}

describe.each(mariadb)('a revocation asked for by a session that is itself being revoked, on %s', (dialect) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ dialect });
  });

  afterAll(async () => {
    await t?.close();
  });

  /**
   * One account signed in three times, given the roles of the race by where their session ids fall in the
   * sessions' primary key (the order in which one statement locks them): 'target first' makes the owner's
   * session O1, which the intruder revokes, the lowest id, so the intruder's request waits at it holding nothing;
   * 'intruder first' makes the intruder's session I the lowest, so that request may hold I while it waits at O1.
   * O2 is the owner's session that revokes I.
   */
  async function sessionsFor(schedule: 'target first' | 'intruder first') {
    const account = await registerUser(t.gql);
    const payloads = [
      account,
      await signIn(t.gql, account.user.email, account.password),
      await signIn(t.gql, account.user.email, account.password),
    ];
    const sorted = await (t.app.orm.em.fork() as Em).find(
      Session,
      { user: account.user.id },
      { orderBy: { id: 'asc' }, fields: ['id'] },
    );
    const [low, middle, high] = sorted.map(
      ({ id }) => payloads.find((payload) => payload.session.id === id) as Payload,
    ) as [Payload, Payload, Payload];
    return schedule === 'target first'
      ? { o1: low, intruder: middle, o2: high }
      : { intruder: low, o1: middle, o2: high };
  }

  const SCHEDULES = ['target first', 'intruder first'] as const;

  it("revokeSession of the owner's session is refused once the intruder's revocation has been answered", async () => {
    for (const schedule of SCHEDULES) {
      const { o1, intruder, o2 } = await sessionsFor(schedule);
      const race = await raceAtSessions(
        t,
        [o1.session.id],
        () => revokeSession(t.gql, o1.session.id, intruder.accessToken),
        () => revokeSession(t.gql, intruder.session.id, o2.accessToken),
      );
      await expectRefusedOrFirst(t, race, [o1.session.id, o2.session.id], intruder.session.id, schedule);
    }
  });

  it("revokeOtherSessions is refused once the intruder's revocation has been answered", async () => {
    for (const schedule of SCHEDULES) {
      const { o1, intruder, o2 } = await sessionsFor(schedule);
      const race = await raceAtSessions(
        t,
        [o1.session.id],
        () => t.gql(REVOKE_OTHER_SESSIONS, {}, { token: intruder.accessToken }),
        () => revokeSession(t.gql, intruder.session.id, o2.accessToken),
      );
      await expectRefusedOrFirst(t, race, [o1.session.id, o2.session.id], intruder.session.id, schedule);
    }
  });

  it('each lands when nothing revokes the asking session meanwhile (the controls)', async () => {
    const one = await sessionsFor('target first');
    const revoked = await raceAtSessions(t, [one.o1.session.id], () =>
      revokeSession(t.gql, one.o1.session.id, one.intruder.accessToken),
    );
    expect(revoked.change.data).toEqual({ revokeSession: true });
    expect(await stillActive(t, [one.o1.session.id, one.o2.session.id])).toEqual([one.o2.session.id]);

    const all = await sessionsFor('target first');
    const others = await raceAtSessions(t, [all.o1.session.id], () =>
      t.gql(REVOKE_OTHER_SESSIONS, {}, { token: all.intruder.accessToken }),
    );
    expect(others.change.data).toEqual({ revokeOtherSessions: 2 });
    const ids = [all.o1.session.id, all.o2.session.id, all.intruder.session.id];
    expect(await stillActive(t, ids)).toEqual([all.intruder.session.id]);
  });
});

describe.each(mariadb)(
  "an admin's revokeUserSessions racing the revocation of the admin's session, on %s",
  (dialect) => {
    let t: TestApp;

    beforeAll(async () => {
      t = await startTestApp({ dialect });
    });

    afterAll(async () => {
      await t?.close();
    });

    /**
     * A user signed in twice, whose sessions are held while an admin's revokeUserSessions of them waits there; the
     * revocation of the admin's session that `prepare` makes ready (signing in beforehand: a sign-in meanwhile could
     * wait at the gap locks of the held request) runs meanwhile. The race, and the user's sessions.
     */
    async function revokeUserSessionsHeld(
      prepare?: (admin: Payload) => Promise<() => Promise<GraphQLResponse>>,
    ): Promise<{ race: Awaited<ReturnType<typeof raceAtSessions>>; sessions: string[]; admin: Payload }> {
      const admin = await signInAsAdmin(t);
      const user = await registerUser(t.gql);
      const again = await signIn(t.gql, user.user.email, user.password);
      const sessions = [user.session.id, again.session.id];
      const revocation = await prepare?.(admin);
      const race = await raceAtSessions(
        t,
        sessions,
        () => t.gql(REVOKE_USER_SESSIONS, { id: user.user.id }, { token: admin.accessToken }),
        revocation,
      );
      return { race, sessions, admin };
    }

    it("is refused once the revocation of the admin's session by the admin, from another session, is answered", async () => {
      const { race, sessions, admin } = await revokeUserSessionsHeld(async (admin) => {
        const other = await signIn(t.gql, admin.user.email, 'correct horse battery');
        return () => revokeSession(t.gql, admin.session.id, other.accessToken);
      });
      await expectRefusedOrFirst(t, race, sessions, admin.session.id, 'revoked from its own other session');
    });

    it("is refused once another admin's revokeUserSessions of the admin has been answered", async () => {
      const { race, sessions, admin } = await revokeUserSessionsHeld(async (admin) => {
        const other = await signInAsAdmin(t);
        return () => t.gql(REVOKE_USER_SESSIONS, { id: admin.user.id }, { token: other.accessToken });
      });
      await expectRefusedOrFirst(t, race, sessions, admin.session.id, 'revoked by another admin');
    });

    it("lands when nothing revokes the admin's session meanwhile (the control)", async () => {
      const { race, sessions } = await revokeUserSessionsHeld();
      expect(race.change.data).toEqual({ revokeUserSessions: 2 });
      expect(await stillActive(t, sessions)).toEqual([]);
      expect(race.answered).toEqual(['change']);
    });
  },
);
