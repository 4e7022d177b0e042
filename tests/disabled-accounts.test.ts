// Disabled accounts (setUserDisabled, User.disabled, the admin CLI's disable-user and enable-user): sessions end at
// once, no sign-in by password, OAuth or reset, refresh refused with its reason, and never zero enabled admins, even
// when admins disable or demote each other all at once. Through the public API, on SQLite and MariaDB.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent } from '../src/db/entities.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { expectError, expectUnauthenticated } from './support/expect.ts';
import { type FakeGitHub, startFakeGitHub } from './support/github.ts';
import {
  type GraphQLResponse,
  loginUser,
  me,
  type Payload,
  refreshToken,
  registerUser,
  signIn,
  uniqueEmail,
} from './support/graphql.ts';
import { scrapeMetrics } from './support/metrics.ts';
import { ACME, authorize, GOOGLE, loginWithCallback, oidcAccount, providersEnv, REDIRECT } from './support/oauth.ts';
import { startOidcProvider, type TestOidcProvider } from './support/oidc.ts';
import { runAdminCli } from './support/processes.ts';
import { type RunningService, serviceAvailable, servicesRequired, startRedis } from './support/services.ts';
import { type SmtpCapture, startSmtpServer } from './support/smtp.ts';
import { eventually, subscribe } from './support/subscriptions.ts';

const SET_DISABLED = 'mutation($id: ID!, $d: Boolean!) { setUserDisabled(userId: $id, disabled: $d) { id disabled } }';
const SET_ROLES = 'mutation($id: ID!, $roles: [Role!]!) { setUserRoles(userId: $id, roles: $roles) { id roles } }';
const USER = 'query($id: ID!) { user(id: $id) { id disabled } }';
const SUBSCRIPTION = 'subscription { sessionRevoked { sessionId reason } }';
const REQUEST_RESET = 'mutation($email: String!) { requestPasswordReset(email: $email) }';
const RESET = 'mutation($input: ResetPasswordInput!) { resetPassword(input: $input) }';
const REGISTER = 'mutation($input: RegisterInput!) { register(input: $input) { accessToken } }';

const ACCOUNT_DISABLED = { code: 'ACCOUNT_DISABLED' };
const INVALID_CREDENTIALS = { code: 'INVALID_CREDENTIALS' };

/** The code in a mail's text body: the indented line of 6 characters from the code alphabet. */
function codeOf(text: string): string {
  const match = /^ {4}([A-HJ-NP-Z2-9]{6})$/m.exec(text);
  if (!match?.[1]) throw new Error(`no code in mail: ${text}`);
  return match[1];
}

describe.each(dialects())('disabled accounts on %s', (dialect) => {
  let t: TestApp;
  let redis: RunningService | undefined;
  let smtp: SmtpCapture;
  let oidc: TestOidcProvider;
  let github: FakeGitHub;
  let cliEnv: Record<string, string>;
  let root: Payload & { password: string };
  /** The token of an enabled admin (root until the races at the end change who that is). */
  let adminToken: string;

  beforeAll(async () => {
    if (serviceAvailable('redis-server') || servicesRequired) redis = await startRedis();
    smtp = await startSmtpServer();
    oidc = await startOidcProvider({ redirectUris: [REDIRECT], clients: [ACME, GOOGLE] });
    github = await startFakeGitHub();
    t = await startTestApp({
      dialect,
      env: {
        ...providersEnv(oidc, github),
        OAUTH_REDIRECT_URIS: REDIRECT,
        SMTP_URL: smtp.url,
        MAIL_FROM: 'Acme <no-reply@acme.test>',
        APP_URL: 'https://app.acme.test/',
        ...(redis ? { REDIS_URL: redis.url } : {}),
      },
    });
    cliEnv = { DATABASE_URL: t.databaseUrl, DATA_DIR: t.dir, ...(redis ? { REDIS_URL: redis.url } : {}) };
    const email = uniqueEmail('root');
    const password = 'root password 1';
    expect(await runAdminCli(['create-admin', email], cliEnv, `${password}\n`)).toMatchObject({ code: 0 });
    root = { ...(await signIn(t.gql, email, password)), password };
    adminToken = root.accessToken;
  });
  afterAll(async () => {
    await t?.close();
    await redis?.stop();
    await smtp?.close();
    await oidc?.stop();
    await github?.stop();
  });

  const setDisabled = (token: string, id: string, disabled: boolean) =>
    t.gql<{ setUserDisabled: { id: string; disabled: boolean } }>(SET_DISABLED, { id, d: disabled }, { token });

  async function disable(id: string, disabled = true) {
    const response = await setDisabled(adminToken, id, disabled);
    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({ setUserDisabled: { id, disabled } });
  }

  const auditRows = async (userId: string, type: string) =>
    (await t.app.orm.em.fork().find(AuditEvent, { userId, type }, { orderBy: { id: 'asc' } })).map((row) => ({
      type: row.type,
      detail: row.detail === null || row.detail === undefined ? null : JSON.parse(row.detail),
    }));

  it('ends every session at once (subscriber told REVOKED_BY_ADMIN), refuses sign-in and refresh, and comes back when enabled', async () => {
    const user = await registerUser(t.gql);
    const second = await signIn(t.gql, user.user.email, user.password);
    const watcher = subscribe<{ sessionRevoked: { sessionId: string; reason: string } }>(
      t.url,
      SUBSCRIPTION,
      user.accessToken,
    );
    // An event reaches only subscriptions that exist: wait for this one (the only one on this instance).
    await eventually(async () => (await scrapeMetrics(t.url)).value('graphql_ws_subscriptions_open') === 1);
    expect((await me(t.gql, user.accessToken, 'id disabled')).data?.me).toEqual({ id: user.user.id, disabled: false });

    // Read (and cached) through federation, then read again after the change: the cached row is dropped.
    const entity = () =>
      t.gql(
        'query($reps: [_Any!]!) { _entities(representations: $reps) { ... on User { id disabled } } }',
        { reps: [{ __typename: 'User', id: user.user.id }] },
        { token: adminToken },
      );
    expect((await entity()).data).toEqual({ _entities: [{ id: user.user.id, disabled: false }] });

    await disable(user.user.id);
    expect((await entity()).data).toEqual({ _entities: [{ id: user.user.id, disabled: true }] });

    // Told of its own session's end, then the server completes the subscription and closes with 4403.
    expect(await watcher.closed).toBe(4403);
    const events = watcher.events.map((event) => event.sessionRevoked);
    expect(events).toContainEqual({ sessionId: user.session.id, reason: 'REVOKED_BY_ADMIN' });
    expect(events.every((event) => event.reason === 'REVOKED_BY_ADMIN')).toBe(true);
    await watcher.dispose();

    expectUnauthenticated(await me(t.gql, user.accessToken), 'SESSION_REVOKED');
    expectUnauthenticated(await me(t.gql, second.accessToken), 'SESSION_REVOKED');
    expectUnauthenticated(await refreshToken(t.gql, second.refreshToken as string), 'ACCOUNT_DISABLED');
    expectError(await loginUser(t.gql, user.user.email, user.password), ACCOUNT_DISABLED);
    expectError(await loginUser(t.gql, user.user.email, 'not the password'), INVALID_CREDENTIALS);
    // An admin sees it disabled.
    expect((await t.gql(USER, { id: user.user.id }, { token: adminToken })).data).toEqual({
      user: { id: user.user.id, disabled: true },
    });
    expect(await auditRows(user.user.id, 'USER_DISABLED')).toEqual([
      { type: 'USER_DISABLED', detail: { by: root.user.id } },
    ]);
    // The wrong password counts as a failed sign-in as usual; the right one is recorded as refused.
    expect((await auditRows(user.user.id, 'LOGIN_FAILED')).map((row) => row.detail)).toEqual([
      { reason: 'ACCOUNT_DISABLED' },
      { reason: 'WRONG_PASSWORD' },
    ]);

    await disable(user.user.id, false);
    expect(await auditRows(user.user.id, 'USER_ENABLED')).toEqual([
      { type: 'USER_ENABLED', detail: { by: root.user.id } },
    ]);
    const again = await signIn(t.gql, user.user.email, user.password);
    expect((await me(t.gql, again.accessToken, 'id disabled')).data?.me).toEqual({ id: user.user.id, disabled: false });
    expect((await refreshToken(t.gql, again.refreshToken as string)).data?.refresh.user.id).toBe(user.user.id);
    // Enabling brings no old session back.
    expectUnauthenticated(await me(t.gql, second.accessToken), 'SESSION_REVOKED');
    expectUnauthenticated(await refreshToken(t.gql, second.refreshToken as string), 'SESSION_REVOKED');
  });

  it('is for users:write only; User.disabled for the account holder or users:read; unknown ids NOT_FOUND', async () => {
    const user = await registerUser(t.gql);
    const other = await registerUser(t.gql);
    expectError(await setDisabled(other.accessToken, user.user.id, true), 'FORBIDDEN');
    expectError(await setDisabled(user.accessToken, user.user.id, true), 'FORBIDDEN');
    expectUnauthenticated(await t.gql(SET_DISABLED, { id: user.user.id, d: true }), 'AUTHENTICATION_REQUIRED');
    const read = await t.gql(USER, { id: user.user.id }, { token: other.accessToken });
    expect(read.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expectError(await setDisabled(adminToken, randomUUID(), true), 'NOT_FOUND');
    expectError(await setDisabled(adminToken, 'not-an-id', true), 'NOT_FOUND');
    // Nothing happened to the account: it still signs in.
    expect((await me(t.gql, user.accessToken)).data?.me).toEqual({ id: user.user.id });
    // Setting what is set changes nothing: no event, no revocation.
    await disable(user.user.id, false);
    expect(await auditRows(user.user.id, 'USER_ENABLED')).toEqual([]);
    expect((await me(t.gql, user.accessToken)).data?.me).toEqual({ id: user.user.id });
  });

  it('register with its email does not make a second account; a password reset changes the password, not the switch', async () => {
    const user = await registerUser(t.gql);
    await disable(user.user.id);
    const registered = await t.gql(REGISTER, { input: { email: user.user.email, password: 'another password' } });
    expectError(registered, { code: 'EMAIL_TAKEN', field: 'email' });

    expect((await t.gql(REQUEST_RESET, { email: user.user.email })).data).toEqual({ requestPasswordReset: true });
    const code = codeOf((await smtp.waitForMail(user.user.email)).text);
    const reset = await t.gql(RESET, {
      input: { email: user.user.email, code, newPassword: 'a brand new password' },
    });
    expect(reset.data).toEqual({ resetPassword: true });
    expectError(await loginUser(t.gql, user.user.email, 'a brand new password'), ACCOUNT_DISABLED);
    expectError(await loginUser(t.gql, user.user.email, user.password), INVALID_CREDENTIALS);
    expect((await t.gql(USER, { id: user.user.id }, { token: adminToken })).data).toEqual({
      user: { id: user.user.id, disabled: true },
    });
  });

  it('OAuth signs no disabled account in: not by its linked provider account, nor makes another by its email', async () => {
    const person = oidcAccount();
    const first = await loginWithCallback(t.gql, await authorize({ gql: t.gql, oidc, github }, 'acme', person));
    const created = first.data?.loginWithOAuth as Payload;
    expect(created.user.email).toBe(person.email);
    await disable(created.user.id);
    expectUnauthenticated(await me(t.gql, created.accessToken), 'SESSION_REVOKED');

    const linked = await loginWithCallback(t.gql, await authorize({ gql: t.gql, oidc, github }, 'acme', person));
    expectError(linked, ACCOUNT_DISABLED);
    // Another provider identity with the disabled account's email: no new account, no sign-in.
    const lookalike = oidcAccount({ email: person.email });
    const other = await loginWithCallback(t.gql, await authorize({ gql: t.gql, oidc, github }, 'google', lookalike));
    expectError(other, 'ACCOUNT_EXISTS');
    const search = await t.gql<{ users: { totalCount: number } }>(
      'query($q: String!) { users(query: $q) { totalCount } }',
      { q: person.email },
      { token: adminToken },
    );
    expect(search.data?.users.totalCount).toBe(1);

    await disable(created.user.id, false);
    const back = await loginWithCallback(t.gql, await authorize({ gql: t.gql, oidc, github }, 'acme', person));
    expect(back.data?.loginWithOAuth.user.id).toBe(created.user.id);
  });

  it('does not make concurrent registrations deadlock (the account check reads only accounts that exist)', async () => {
    const answers = await Promise.all(
      Array.from({ length: 40 }, () =>
        t.gql(REGISTER, {
          input: { email: `many-${randomUUID().slice(0, 8)}@example.com`, password: 'correct horse battery' },
        }),
      ),
    );
    expect(answers.map((answer) => answer.errors ?? 'signed in')).toEqual(answers.map(() => 'signed in'));
  });

  it('leaves no live session to a sign-in racing the disabling', async () => {
    const user = await registerUser(t.gql);
    const logins = Array.from({ length: 24 }, () => loginUser(t.gql, user.user.email, user.password));
    const disabling = setDisabled(adminToken, user.user.id, true);
    const answers = await Promise.all(logins);
    expect((await disabling).data).toEqual({ setUserDisabled: { id: user.user.id, disabled: true } });
    for (const answer of answers) {
      if (answer.errors) {
        expectError(answer, ACCOUNT_DISABLED);
        continue;
      }
      // Opened before the disabling committed: revoked with the others.
      const payload = answer.data?.login as Payload;
      expectUnauthenticated(await me(t.gql, payload.accessToken), 'SESSION_REVOKED');
      expectUnauthenticated(await refreshToken(t.gql, payload.refreshToken as string), 'ACCOUNT_DISABLED');
    }
    const sessions = await t.gql<{ user: { sessions: unknown[] } }>(
      'query($id: ID!) { user(id: $id) { sessions { id } } }',
      { id: user.user.id },
      { token: adminToken },
    );
    expect(sessions.data?.user.sessions).toEqual([]);
  });

  it('disable-user and enable-user in the admin CLI, by email or id; a running instance refuses the tokens at once', async () => {
    const user = await registerUser(t.gql);
    const help = await runAdminCli(['disable-user', '--help'], {});
    expect(help.code).toBe(0);
    expect(help.out.split('\n')[0]).toBe('usage: npm run admin -- disable-user EMAIL|ID');

    const disabled = await runAdminCli(['disable-user', user.user.email.toUpperCase()], cliEnv);
    expect(disabled).toMatchObject({
      code: 0,
      out: `disabled ${user.user.email}: its sessions are ended and it cannot sign in until enable-user`,
    });
    // Through Redis the running instance heard of it; without Redis, the token lives until it expires.
    if (redis) expectUnauthenticated(await me(t.gql, user.accessToken), 'SESSION_REVOKED');
    expectUnauthenticated(await refreshToken(t.gql, user.refreshToken as string), 'ACCOUNT_DISABLED');
    expectError(await loginUser(t.gql, user.user.email, user.password), ACCOUNT_DISABLED);
    expect(await auditRows(user.user.id, 'USER_DISABLED')).toEqual([{ type: 'USER_DISABLED', detail: { by: 'cli' } }]);
    expect(await runAdminCli(['disable-user', user.user.id], cliEnv)).toMatchObject({
      code: 0,
      out: `${user.user.email} is already disabled`,
    });

    // Promoting it does not switch it on.
    expect(await runAdminCli(['create-admin', user.user.email], cliEnv)).toMatchObject({
      code: 0,
      out: `${user.user.email} is now an admin (it takes effect at the next sign-in or refresh) (the account is disabled: enable-user lets it sign in)`,
    });
    expectError(await loginUser(t.gql, user.user.email, user.password), ACCOUNT_DISABLED);

    expect(await runAdminCli(['enable-user', user.user.id], cliEnv)).toMatchObject({
      code: 0,
      out: `enabled ${user.user.email}: it can sign in again`,
    });
    expect((await signIn(t.gql, user.user.email, user.password)).user.roles).toEqual(['USER', 'ADMIN']);
    // Back to a plain user: the races below count on knowing every enabled admin.
    expect((await t.gql(SET_ROLES, { id: user.user.id, roles: ['USER'] }, { token: adminToken })).errors).toBe(
      undefined,
    );
    expect(await runAdminCli(['disable-user', 'nobody@example.com'], cliEnv)).toMatchObject({
      code: 1,
      err: 'no account nobody@example.com',
    });
    expect((await runAdminCli(['enable-user'], cliEnv)).code).toBe(1);
  }, 120_000); // six CLI processes, each starting the whole service

  /** Makes `count` fresh admins (promoted by the current admin) and signs each in again to carry the role. */
  async function freshAdmins(count: number): Promise<(Payload & { password: string })[]> {
    const admins = [];
    for (let i = 0; i < count; i++) {
      const user = await registerUser(t.gql);
      const promoted = await t.gql(SET_ROLES, { id: user.user.id, roles: ['USER', 'ADMIN'] }, { token: adminToken });
      expect(promoted.errors).toBeUndefined();
      admins.push({ ...(await signIn(t.gql, user.user.email, user.password)), password: user.password });
    }
    return admins;
  }

  /** The enabled admins among `ids`, as an admin reads them. */
  async function enabledAdmins(token: string, ids: string[]): Promise<string[]> {
    const enabled: string[] = [];
    for (const id of ids) {
      const response = await t.gql<{ user: { roles: string[]; disabled: boolean } }>(
        'query($id: ID!) { user(id: $id) { roles disabled } }',
        { id },
        { token },
      );
      const user = response.data?.user;
      if (user?.roles.includes('ADMIN') && !user.disabled) enabled.push(id);
    }
    return enabled;
  }

  /**
   * Every admin asks, all at once, to take every other admin away (`act`). Whatever the interleaving exactly one
   * enabled admin is left: two enabled admins would have succeeded against each other, and none is refused.
   */
  async function race(
    act: (token: string, id: string) => Promise<GraphQLResponse>,
    refusal: Record<string, unknown>,
  ): Promise<Payload & { password: string }> {
    // Root is one of the racers: then these admins are all the enabled admins there are.
    const admins = [root, ...(await freshAdmins(5))];
    const ids = admins.map((a) => a.user.id);
    expect(await enabledAdmins(adminToken, ids)).toHaveLength(admins.length);
    const requests = admins.flatMap((actor) =>
      admins.filter((target) => target !== actor).map((target) => act(actor.accessToken, target.user.id)),
    );
    const answers = await Promise.all(requests);
    let succeeded = 0;
    for (const answer of answers) {
      if (!answer.errors) {
        succeeded++;
        continue;
      }
      // Refused as the last enabled admin, or the actor had already been taken away and its session with it.
      expect(answer.errors).toHaveLength(1);
      expect([refusal, { code: 'UNAUTHENTICATED', reason: 'SESSION_REVOKED' }]).toContainEqual(
        answer.errors[0]?.extensions,
      );
    }
    // Each admin taken away took one success (more when one was taken away twice).
    expect(succeeded).toBeGreaterThanOrEqual(admins.length - 1);
    // The one whose sessions were not ended: taking an admin away ends its sessions.
    const alive = [];
    for (const admin of admins) if (!(await me(t.gql, admin.accessToken)).errors) alive.push(admin);
    expect(alive).toHaveLength(1);
    const survivor = alive[0] as Payload & { password: string };
    expect(await enabledAdmins(survivor.accessToken, ids)).toEqual([survivor.user.id]);
    return survivor as Payload & { password: string };
  }

  it('never leaves zero enabled admins when admins disable each other at once; the last one cannot be disabled', async () => {
    const survivor = await race((token, id) => setDisabled(token, id, true), {
      code: 'BAD_USER_INPUT',
      field: 'userId',
    });
    expectError(await setDisabled(survivor.accessToken, survivor.user.id, true), {
      code: 'BAD_USER_INPUT',
      field: 'userId',
    });
    // Nor can it lose ADMIN: it is the last enabled one, whatever the disabled admins' roles.
    expectError(await t.gql(SET_ROLES, { id: survivor.user.id, roles: ['USER'] }, { token: survivor.accessToken }), {
      code: 'BAD_USER_INPUT',
      field: 'roles',
    });
    // Root (disabled or not) back on, and signed in again for what follows.
    await setDisabled(survivor.accessToken, root.user.id, false);
    root = { ...(await signIn(t.gql, root.user.email, root.password)), password: root.password };
    adminToken = root.accessToken;
    if (survivor.user.id !== root.user.id) {
      expect((await t.gql(SET_ROLES, { id: survivor.user.id, roles: ['USER'] }, { token: adminToken })).errors).toBe(
        undefined,
      );
    }
  });

  it('never leaves zero enabled admins when admins demote each other at once (setUserRoles)', async () => {
    await race((token, id) => t.gql(SET_ROLES, { id, roles: ['USER'] }, { token }), {
      code: 'BAD_USER_INPUT',
      field: 'roles',
    });
  });
});
