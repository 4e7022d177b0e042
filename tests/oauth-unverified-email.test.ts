// Pre-account takeover through OAuth, on both databases, through the public API with a real OpenID Provider, the
// GitHub stand-in and mail captured by SMTP: an email a provider did not verify never makes or reaches an account,
// and proving an email (password reset, verification code) unlinks whatever was linked while it was unproven.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, type AuditEventType, LinkedAccount, User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { expectError } from './support/expect.ts';
import type { FakeGitHub, GitHubAccount } from './support/github.ts';
import { errorCode, type Gql, loginUser, registerUser, uniqueEmail } from './support/graphql.ts';
import {
  authorize as authorizeAt,
  type Callback,
  githubAccount,
  loginWithCallback,
  oidcAccount,
  REDIRECT,
  startProviders,
  type TestProviders,
} from './support/oauth.ts';
import type { OidcAccount, TestOidcProvider } from './support/oidc.ts';
import { mailedCode, type SmtpCapture, startSmtpServer } from './support/smtp.ts';

const LINKED = 'linkedAccounts { provider providerUserId email }';
const LINK = `mutation($input: OAuthCodeInput!) { linkOAuthProvider(input: $input) { id ${LINKED} } }`;
const REGISTER = 'mutation($input: RegisterInput!) { register(input: $input) { user { id } } }';
const REQUEST_RESET = 'mutation($email: String!) { requestPasswordReset(email: $email) }';
const RESET = 'mutation($input: ResetPasswordInput!) { resetPassword(input: $input) }';
const REQUEST_VERIFICATION = 'mutation { requestEmailVerification }';
const VERIFY = 'mutation($code: String!) { verifyEmail(code: $code) { id emailVerified } }';

/** What a new sign-in answers when the provider did not verify the email (or shared none). */
const NO_VERIFIED_EMAIL = (name: string) =>
  `${name} did not share a verified email address, which a new account needs; verify one there and try again`;

interface LinkedView {
  provider: string;
  providerUserId: string;
  email: string | null;
}

/** Mallory at GitHub, with one verified primary address. */
const malloryAtGitHub = (email = uniqueEmail('gh')): GitHubAccount =>
  githubAccount({ name: 'Mallory', emails: [{ email, primary: true, verified: true }] });

describe.each(dialects())('OAuth and unverified emails on %s', (dialect) => {
  let t: TestApp;
  let oidc: TestOidcProvider;
  let github: FakeGitHub;
  let providers: TestProviders;
  let smtp: SmtpCapture;

  beforeAll(async () => {
    providers = await startProviders();
    ({ oidc, github } = providers);
    smtp = await startSmtpServer();
    t = await startTestApp({
      dialect,
      env: {
        SMTP_URL: smtp.url,
        MAIL_FROM: 'Acme <no-reply@acme.test>',
        APP_URL: 'https://app.acme.test/',
        OAUTH_REDIRECT_URIS: REDIRECT,
        ...providers.env,
      },
    });
  });

  afterAll(async () => {
    await t?.close();
    await providers?.stop();
    await smtp?.close();
  });

  const gql: Gql = (query, variables, options) => t.gql(query, variables, options);
  const em = () => t.app.orm.em.fork() as Em;

  /** startOAuth (with `token`: a link), then the person at the provider: what comes back on the redirect URI. */
  const authorize = (provider: string, account: OidcAccount | GitHubAccount, token?: string) =>
    authorizeAt({ gql, oidc, github }, provider, account, token);

  const login = (input: Callback) => loginWithCallback(gql, input);
  const link = (input: Callback, token: string) =>
    gql<{ linkOAuthProvider: { id: string; linkedAccounts: LinkedView[] } }>(LINK, { input }, { token });

  async function linkOrFail(provider: string, account: OidcAccount | GitHubAccount, token: string) {
    const response = await link(await authorize(provider, account, token), token);
    if (!response.data) throw new Error(`link failed: ${JSON.stringify(response.errors)}`);
    return response.data.linkOAuthProvider.linkedAccounts;
  }

  /** The victim's side: a reset code mailed to the address, spent with a new password. */
  async function resetByMail(email: string, newPassword: string) {
    expect((await gql(REQUEST_RESET, { email })).data).toEqual({ requestPasswordReset: true });
    const code = mailedCode(await smtp.waitForMail(email));
    expect((await gql(RESET, { input: { email, code, newPassword } })).data).toEqual({ resetPassword: true });
  }

  async function linkedAccountsOf(userId: string): Promise<LinkedView[]> {
    const rows = await em().find(LinkedAccount, { user: userId }, { orderBy: { provider: 'asc' } });
    return rows.map((row) => ({
      provider: row.provider,
      providerUserId: row.providerUserId,
      email: row.email ?? null,
    }));
  }

  const auditRows = async (type: AuditEventType, userId: string | null) =>
    (await em().find(AuditEvent, { type, userId }, { orderBy: { id: 'asc' } })).map((row) => ({
      userId: row.userId,
      detail: row.detail ? JSON.parse(row.detail) : null,
    }));

  const meOf = (token: string) => gql<{ me: { id: string } | null }>('{ me { id } }', {}, { token });

  describe('a new sign-in needs an email the provider verified', () => {
    it("answers OAUTH_FAILED for the issue's attack, so the victim registers, resets and owns the account alone", async () => {
      const victim = uniqueEmail('victim');
      const mallory = oidcAccount({ email: victim, email_verified: false });
      // The attack as found: a sign-in with the victim's address that the provider has not verified.
      expectError(
        await login(await authorize('acme', mallory)),
        { code: 'OAUTH_FAILED' },
        NO_VERIFIED_EMAIL('Acme ID'),
      );
      expect(await em().count(User, { email: victim })).toBe(0);
      expect(await em().count(LinkedAccount, { providerUserId: mallory.sub })).toBe(0);
      expect(await auditRows('OAUTH_FAILED', null)).toContainEqual({
        userId: null,
        detail: { provider: 'acme', reason: 'NO_VERIFIED_EMAIL', purpose: 'login' },
      });

      // The victim is not told EMAIL_TAKEN, and goes on to reset and sign in.
      const registered = await gql<{ register: { user: { id: string } } }>(REGISTER, {
        input: { email: victim, password: 'victim password 1' },
      });
      expect(registered.errors).toBeUndefined();
      const victimId = registered.data?.register.user.id;
      await resetByMail(victim, 'victim password 2');
      expect((await loginUser(gql, victim, 'victim password 2')).data?.login.user.id).toBe(victimId);

      // Mallory tries again, now that an account has the address: the same answer, nothing looked up or linked.
      expectError(
        await login(await authorize('acme', mallory)),
        { code: 'OAUTH_FAILED' },
        NO_VERIFIED_EMAIL('Acme ID'),
      );
      expect(await linkedAccountsOf(victimId as string)).toEqual([]);
      expect(await auditRows('OAUTH_FAILED', victimId as string)).toEqual([]);
    });

    it('takes email_verified only as true or "true": "false", other values and a missing claim are unverified', async () => {
      for (const email_verified of [false, 'false', 'FALSE', 1, 'yes', undefined] as unknown[]) {
        const account = oidcAccount({ email_verified: email_verified as string });
        if (email_verified === undefined) delete account.email_verified;
        expectError(
          await login(await authorize('acme', account)),
          { code: 'OAUTH_FAILED' },
          NO_VERIFIED_EMAIL('Acme ID'),
        );
        expect(await em().count(User, { email: account.email })).toBe(0);
      }
      for (const email_verified of [true, 'true']) {
        const account = oidcAccount({ email_verified });
        const response = await login(await authorize('acme', account));
        expect(response.data?.loginWithOAuth.user).toMatchObject({ email: account.email, emailVerified: true });
      }
    });

    it('takes no GitHub address but a verified primary: an unverified primary is refused even beside a verified one', async () => {
      const victim = uniqueEmail('victim');
      const account = githubAccount({
        login: 'mallory-gh',
        emails: [
          { email: victim, primary: true, verified: false },
          { email: uniqueEmail('other'), primary: false, verified: true },
        ],
      });
      expectError(
        await login(await authorize('github', account)),
        { code: 'OAUTH_FAILED' },
        NO_VERIFIED_EMAIL('GitHub'),
      );
      // A "verified" that is not the boolean true (a string, as a misbehaving API might send) is not verified.
      const stringly = { ...githubAccount(), emails: [{ email: victim, primary: true, verified: 'false' }] };
      expectError(
        await login(await authorize('github', stringly as unknown as GitHubAccount)),
        { code: 'OAUTH_FAILED' },
        NO_VERIFIED_EMAIL('GitHub'),
      );
      expect(await em().count(User, { email: victim })).toBe(0);
    });

    it('keeps and shows only an email the provider verified when linking', async () => {
      const user = await registerUser(gql);
      const unverified = oidcAccount({ email: uniqueEmail('someone-else'), email_verified: false });
      const verified = oidcAccount({ email: uniqueEmail('mine'), email_verified: 'true' });
      await linkOrFail('acme', unverified, user.accessToken);
      const linked = await linkOrFail('google', verified, user.accessToken);
      expect(linked).toEqual([
        { provider: 'acme', providerUserId: unverified.sub, email: null },
        { provider: 'google', providerUserId: verified.sub, email: verified.email },
      ]);
      expect(await linkedAccountsOf(user.user.id)).toEqual(linked);
    });
  });

  describe('proving an email unlinks what was linked while it was unproven', () => {
    it('a password reset by the owner removes the links of someone who registered the address first', async () => {
      const victim = uniqueEmail('victim');
      // Mallory registers the victim's address with a password (unverified) and links two accounts of her own.
      const mallory = await registerUser(gql, { email: victim, password: 'mallory password' });
      const malloryGitHub = malloryAtGitHub(uniqueEmail('mallory'));
      const malloryAcme = oidcAccount({ email: victim, email_verified: false });
      await linkOrFail('github', malloryGitHub, mallory.accessToken);
      expect(await linkOrFail('acme', malloryAcme, mallory.accessToken)).toHaveLength(2);
      // Before the owner proves the address, Mallory's provider account does sign in to the account she made.
      expect((await login(await authorize('github', malloryGitHub))).data?.loginWithOAuth.user.id).toBe(
        mallory.user.id,
      );

      // The owner: EMAIL_TAKEN, then a reset through the mailed code, then a sign-in.
      expect(errorCode(await gql(REGISTER, { input: { email: victim, password: 'victim password 1' } }))).toBe(
        'EMAIL_TAKEN',
      );
      await resetByMail(victim, 'victim password 2');
      const owner = await loginUser(gql, victim, 'victim password 2');
      expect(owner.data?.login.user).toMatchObject({ id: mallory.user.id, emailVerified: true });

      // Mallory's provider accounts no longer reach it: GitHub makes her an account of her own verified address,
      // Acme (unverified) makes none.
      expect(await linkedAccountsOf(mallory.user.id)).toEqual([]);
      const viaGitHub = await login(await authorize('github', malloryGitHub));
      expect(viaGitHub.data?.loginWithOAuth.user.id).not.toBe(mallory.user.id);
      expect(viaGitHub.data?.loginWithOAuth.user.email).toBe(malloryGitHub.emails[0]?.email);
      expectError(
        await login(await authorize('acme', malloryAcme)),
        { code: 'OAUTH_FAILED' },
        NO_VERIFIED_EMAIL('Acme ID'),
      );
      expect(errorCode(await loginUser(gql, victim, 'mallory password'))).toBe('INVALID_CREDENTIALS');
      expect(errorCode(await meOf(mallory.accessToken))).toBe('UNAUTHENTICATED');
      expect(await auditRows('OAUTH_UNLINKED', mallory.user.id)).toEqual([
        { userId: mallory.user.id, detail: { provider: 'acme', reason: 'EMAIL_PROVEN' } },
        { userId: mallory.user.id, detail: { provider: 'github', reason: 'EMAIL_PROVEN' } },
      ]);
    });

    it('a reset removes the link of an account a provider made under an unverified email before this rule', async () => {
      // What the attack left behind on a database from before the fix: an account with no password and an
      // unverified email, made by Mallory's provider account, which signs in to it.
      const victim = uniqueEmail('victim');
      const mallory = oidcAccount({ email: victim, email_verified: false });
      const userId = randomUUID();
      const now = new Date();
      const seed = em();
      seed.create(User, {
        id: userId,
        email: victim,
        passwordHash: null,
        emailVerified: false,
        displayName: null,
        roles: 'USER',
        createdAt: now,
        updatedAt: now,
      });
      seed.create(LinkedAccount, {
        id: randomUUID(),
        user: userId,
        provider: 'acme',
        providerUserId: mallory.sub,
        email: victim,
        linkedAt: now,
      });
      await seed.flush();
      const before = await login(await authorize('acme', mallory));
      expect(before.data?.loginWithOAuth.user.id).toBe(userId);

      expect(errorCode(await gql(REGISTER, { input: { email: victim, password: 'victim password 1' } }))).toBe(
        'EMAIL_TAKEN',
      );
      await resetByMail(victim, 'victim password 2');
      expect((await loginUser(gql, victim, 'victim password 2')).data?.login.user.id).toBe(userId);

      expectError(
        await login(await authorize('acme', mallory)),
        { code: 'OAUTH_FAILED' },
        NO_VERIFIED_EMAIL('Acme ID'),
      );
      expect(errorCode(await meOf(before.data?.loginWithOAuth.accessToken as string))).toBe('UNAUTHENTICATED');
      expect(await linkedAccountsOf(userId)).toEqual([]);
      expect(await auditRows('OAUTH_UNLINKED', userId)).toEqual([
        { userId, detail: { provider: 'acme', reason: 'EMAIL_PROVEN' } },
      ]);
    });

    it('verifyEmail removes links made before it, and keeps those made after, through a later reset too', async () => {
      const user = await registerUser(gql);
      const before = malloryAtGitHub(user.user.email);
      await linkOrFail('github', before, user.accessToken);
      expect((await gql(REQUEST_VERIFICATION, {}, { token: user.accessToken })).data).toEqual({
        requestEmailVerification: true,
      });
      const code = mailedCode(await smtp.waitForMail(user.user.email));
      const verified = await gql(VERIFY, { code }, { token: user.accessToken });
      expect(verified.data).toEqual({ verifyEmail: { id: user.user.id, emailVerified: true } });
      expect(await linkedAccountsOf(user.user.id)).toEqual([]);
      expect(await auditRows('OAUTH_UNLINKED', user.user.id)).toEqual([
        { userId: user.user.id, detail: { provider: 'github', reason: 'EMAIL_PROVEN' } },
      ]);
      // The GitHub account now reaches the address's account only as any stranger would: ACCOUNT_EXISTS.
      expect(errorCode(await login(await authorize('github', before)))).toBe('ACCOUNT_EXISTS');

      // Linked once the email is proven: it stays, and a password reset (proving it again) leaves it alone.
      const after = oidcAccount({ email: user.user.email });
      await linkOrFail('acme', after, user.accessToken);
      await resetByMail(user.user.email, 'another password 2');
      expect(await linkedAccountsOf(user.user.id)).toEqual([
        { provider: 'acme', providerUserId: after.sub, email: user.user.email },
      ]);
      expect((await login(await authorize('acme', after))).data?.loginWithOAuth.user.id).toBe(user.user.id);
      expect(await auditRows('OAUTH_UNLINKED', user.user.id)).toHaveLength(1);
    });
  });

  it('refuses a link whose session a reset revoked while the provider was answering', async () => {
    const victim = uniqueEmail('victim');
    const mallory = await registerUser(gql, { email: victim, password: 'mallory password' });
    const callback = await authorize('github', malloryAtGitHub(uniqueEmail('mallory')), mallory.accessToken);
    expect((await gql(REQUEST_RESET, { email: victim })).data).toEqual({ requestPasswordReset: true });
    const code = mailedCode(await smtp.waitForMail(victim));
    // Mallory's link has passed the token check and waits on GitHub; the owner resets meanwhile.
    const hold = github.holdTokens();
    const linking = link(callback, mallory.accessToken);
    await hold.arrived(1);
    expect((await gql(RESET, { input: { email: victim, code, newPassword: 'victim password 2' } })).data).toEqual({
      resetPassword: true,
    });
    hold.release();
    expectError(await linking, { code: 'UNAUTHENTICATED', reason: 'SESSION_REVOKED' }, 'The session has been revoked');
    expect(await linkedAccountsOf(mallory.user.id)).toEqual([]);
  });

  it('leaves no way in when the owner resets while the squatter links and signs in, in 30 rounds', async () => {
    const LOGINS = 8;
    for (let round = 0; round < 30; round++) {
      const victim = uniqueEmail(`race${round}`);
      const mallory = await registerUser(gql, { email: victim, password: 'mallory password' });
      const malloryGitHub = malloryAtGitHub(uniqueEmail('mallory'));
      await linkOrFail('github', malloryGitHub, mallory.accessToken);
      // Everything prepared up front, so that the requests below are in flight together.
      const links = await Promise.all(
        ['acme', 'google'].map((provider) => authorize(provider, oidcAccount(), mallory.accessToken)),
      );
      const logins = await Promise.all(Array.from({ length: LOGINS }, () => authorize('github', malloryGitHub)));
      expect((await gql(REQUEST_RESET, { email: victim })).data).toEqual({ requestPasswordReset: true });
      const code = mailedCode(await smtp.waitForMail(victim));

      const [reset, linked, signedIn] = await Promise.all([
        gql(RESET, { input: { email: victim, code, newPassword: 'victim password 2' } }),
        Promise.all(links.map((callback) => link(callback, mallory.accessToken))),
        Promise.all(logins.map((callback) => login(callback))),
      ]);
      expect(reset.data).toEqual({ resetPassword: true });
      for (const response of linked) {
        // Linked before the reset (then removed by it), or refused: never an internal error.
        if (response.errors) expect(errorCode(response)).toBe('UNAUTHENTICATED');
      }
      for (const response of signedIn) {
        const payload = response.data?.loginWithOAuth;
        if (!payload) {
          // The link was removed between reading it and opening the session (OAUTH_FAILED), or, after the reset,
          // a concurrent sign-in of the same GitHub account made its new account first.
          expect(['OAUTH_FAILED', 'OAUTH_ACCOUNT_IN_USE', 'ACCOUNT_EXISTS']).toContain(errorCode(response));
        } else if (payload.user.id === mallory.user.id) {
          // Signed in before the reset: that session ended with it.
          expect(errorCode(await meOf(payload.accessToken))).toBe('UNAUTHENTICATED');
        } else {
          // After the reset GitHub is a stranger to the account; the first sign-in makes Mallory her own.
          expect(payload.user.email).toBe(malloryGitHub.emails[0]?.email);
        }
      }
      expect(await linkedAccountsOf(mallory.user.id)).toEqual([]);
      expect(errorCode(await meOf(mallory.accessToken))).toBe('UNAUTHENTICATED');
    }
  }, 180_000);
});
