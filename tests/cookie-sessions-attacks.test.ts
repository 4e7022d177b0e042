// Browser sessions under attack (API.md "Browser sessions"): a cookie session's rotated refresh token never goes to
// an answer that cannot reach the cookie the browser holds; odd Origin spellings never make the cookie act; the
// cookie travels on every HTTP transport (SSE, multipart) and dies with a revocation made elsewhere (role removal),
// and a password reset sent with it clears it.
// Through HTTP with the headers in view, on SQLite and MariaDB.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { TestClock } from './support/clock.ts';
import { expectError, expectUnauthenticated } from './support/expect.ts';
import { type GraphQLResponse, PAYLOAD, uniqueEmail } from './support/graphql.ts';
import { mailedCode, type SmtpCapture, startSmtpServer } from './support/smtp.ts';

const PASSWORD = 'correct horse battery';
const NEW_PASSWORD = 'another horse battery';
const APP_ORIGIN = 'https://app.example.com';
const CLEARED = ['Max-Age=0', 'Path=/graphql', 'HttpOnly', 'SameSite=Strict'];

const REGISTER = `mutation($input: RegisterInput!) { register(input: $input) { ${PAYLOAD} } }`;
const LOGIN = `mutation($input: LoginInput!) { login(input: $input) { ${PAYLOAD} } }`;
const REFRESH = `mutation { refresh { ${PAYLOAD} } }`;
const CHANGE_PASSWORD = `mutation($input: ChangePasswordInput!) { changePassword(input: $input) { ${PAYLOAD} } }`;

/** The one refresh Set-Cookie of an answer as its value and attributes, or undefined. */
function setCookieOf(headers: Headers) {
  const all = headers.getSetCookie();
  expect(all.length).toBeLessThanOrEqual(1);
  if (all[0] === undefined) return undefined;
  const [pair, ...attributes] = all[0].split(';').map((part) => part.trim());
  expect(pair?.startsWith('refresh_token=')).toBe(true);
  return { value: (pair as string).slice('refresh_token='.length), attributes };
}

describe.each(dialects())('cookie sessions under attack on %s', (dialect) => {
  let t: TestApp;
  let smtp: SmtpCapture;
  const clock = new TestClock(Date.parse('2026-06-01T00:00:00Z'));

  beforeAll(async () => {
    smtp = await startSmtpServer();
    t = await startTestApp({
      dialect,
      clock,
      env: { CORS_ORIGINS: APP_ORIGIN, SMTP_URL: smtp.url, MAIL_FROM: 'Acme <no-reply@acme.test>' },
    });
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  const gql = <T = Record<string, any>>(
    query: string,
    variables: Record<string, unknown> = {},
    options: { token?: string; cookie?: string; origin?: string } = {},
  ) =>
    t.gql<T>(query, variables, {
      token: options.token,
      headers: {
        origin: options.origin ?? APP_ORIGIN,
        ...(options.cookie === undefined ? {} : { cookie: `refresh_token=${options.cookie}` }),
      },
    });

  async function cookieAccount() {
    const email = uniqueEmail('attack');
    const response = await gql(REGISTER, { input: { email, password: PASSWORD, tokenDelivery: 'COOKIE' } });
    const payload = response.data?.register;
    const cookie = setCookieOf(response.headers)?.value;
    if (!payload || !cookie) throw new Error(`register failed: ${JSON.stringify(response.errors)}`);
    return { email, accessToken: payload.accessToken as string, userId: payload.user.id as string, cookie };
  }

  const refreshByCookie = (cookie: string, origin?: string) => gql(REFRESH, {}, { cookie, origin });
  const changePassword = (token: string, cookie?: string) =>
    gql(CHANGE_PASSWORD, { input: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD } }, { token, cookie });

  it("changePassword of a cookie session from a request without its cookie is refused; nothing changes and the browser's cookie lives on", async () => {
    // A cross-origin fetch without credentials (Apollo's and urql's default) neither sends the cookie nor stores
    // the answer's Set-Cookie: a rotation there would leave the browser a spent cookie, a REUSE at its next refresh.
    const { email, accessToken, cookie } = await cookieAccount();
    const other = await cookieAccount();
    for (const sent of [undefined, other.cookie]) {
      const refused = await changePassword(accessToken, sent);
      expectError(refused, 'BAD_USER_INPUT');
      expect(refused.headers.getSetCookie()).toEqual([]);
    }
    // The password is unchanged and the session was not rotated: well past the reuse grace, the cookie refreshes.
    const login = await gql(LOGIN, { input: { email, password: PASSWORD } });
    expect(login.errors).toBeUndefined();
    clock.advance(60_000);
    const refreshed = await refreshByCookie(cookie);
    expect(refreshed.errors).toBeUndefined();
    expect(refreshed.data?.refresh.refreshToken).toBeNull();
    // With its cookie the change goes through and the rotated cookie replaces it.
    const next = setCookieOf(refreshed.headers)?.value as string;
    const changed = await changePassword(refreshed.data?.refresh.accessToken, next);
    expect(changed.errors).toBeUndefined();
    expect(changed.data?.changePassword.refreshToken).toBeNull();
    expect(setCookieOf(changed.headers)?.value.startsWith(`${changed.data?.changePassword.session.id}.2.`)).toBe(true);
  });

  it('a BODY session changes its password without any cookie, as before', async () => {
    const email = uniqueEmail('attack-body');
    const registered = await gql(REGISTER, { input: { email, password: PASSWORD } });
    const changed = await changePassword(registered.data?.register.accessToken);
    expect(changed.errors).toBeUndefined();
    expect(changed.data?.changePassword.refreshToken).toMatch(/\.1\./);
    expect(changed.headers.getSetCookie()).toEqual([]);
  });

  it('odd spellings of an allowed origin never make the cookie act, and spend nothing', async () => {
    const { cookie } = await cookieAccount();
    for (const origin of [
      'HTTPS://app.example.com',
      'https://APP.example.com',
      'https://app.example.com.',
      'https://app.example.com:443',
      'https://app.example.com/',
      'http://app.example.com',
      'https://app.example.com.evil.net',
      'http://localhost.:5173',
      'http://LOCALHOST:5173',
      'http://[::1]:5173',
      'null',
      '',
    ]) {
      const response = await refreshByCookie(cookie, origin);
      expect({ origin, code: response.errors?.[0]?.extensions?.code }).toEqual({ origin, code: 'FORBIDDEN' });
      expectError(response, 'FORBIDDEN');
      expect(response.headers.getSetCookie()).toEqual([]);
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
    }
    // The cookie was never spent: it refreshes from the allowed origin, generation 0 to 1.
    const response = await refreshByCookie(cookie);
    expect(response.errors).toBeUndefined();
    expect(setCookieOf(response.headers)?.value).toMatch(/^[0-9a-f-]{36}\.1\./);
  });

  it('sign-in and refresh answered as a stream (SSE, multipart) still set the cookie, and the body never shows it', async () => {
    for (const accept of ['text/event-stream', 'multipart/mixed']) {
      const response = await fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept, origin: APP_ORIGIN },
        body: JSON.stringify({
          query: REGISTER,
          variables: { input: { email: uniqueEmail('stream'), password: PASSWORD, tokenDelivery: 'COOKIE' } },
        }),
      });
      const body = await response.text();
      const cookie = setCookieOf(response.headers)?.value as string;
      expect(cookie).toMatch(/^[0-9a-f-]{36}\.0\./);
      expect(body).toContain('"refreshToken":null');
      expect(body).not.toContain(cookie.split('.')[2]);
      const refreshed = await fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept, origin: APP_ORIGIN, cookie: `refresh_token=${cookie}` },
        body: JSON.stringify({ query: REFRESH }),
      });
      const next = setCookieOf(refreshed.headers)?.value as string;
      expect(next).toMatch(/^[0-9a-f-]{36}\.1\./);
      expect(await refreshed.text()).not.toContain(next.split('.')[2]);
    }
  });

  it("removing a user's role ends their cookie session: its next refresh is SESSION_REVOKED and clears the cookie", async () => {
    const admin = await cookieAccount();
    await (t.app.orm.em.fork() as Em).nativeUpdate(User, { id: admin.userId }, { roles: 'USER,ADMIN' });
    const signedIn = await gql(LOGIN, { input: { email: admin.email, password: PASSWORD } });
    const adminToken = signedIn.data?.login.accessToken as string;
    const victim = await cookieAccount();
    await (t.app.orm.em.fork() as Em).nativeUpdate(User, { id: victim.userId }, { roles: 'USER,ADMIN' });
    const removed = await gql(
      'mutation($id: ID!) { setUserRoles(userId: $id, roles: [USER]) { id roles } }',
      { id: victim.userId },
      { token: adminToken },
    );
    expect(removed.errors).toBeUndefined();
    const response: GraphQLResponse = await refreshByCookie(victim.cookie);
    expectUnauthenticated(response, 'SESSION_REVOKED');
    expect(setCookieOf(response.headers)?.attributes).toEqual(CLEARED);
  });

  it("a password reset sent from the browser holding the user's cookie clears it; the session is over", async () => {
    const { email, cookie } = await cookieAccount();
    const requested = await gql('mutation($email: String!) { requestPasswordReset(email: $email) }', { email });
    expect(requested.data).toEqual({ requestPasswordReset: true });
    const code = mailedCode(await smtp.waitForMail(email));
    const reset = await gql(
      'mutation($input: ResetPasswordInput!) { resetPassword(input: $input) }',
      { input: { email, code, newPassword: NEW_PASSWORD } },
      { cookie },
    );
    expect(reset.data).toEqual({ resetPassword: true });
    expect(setCookieOf(reset.headers)?.attributes).toEqual(CLEARED);
    expectUnauthenticated(await refreshByCookie(cookie), 'SESSION_REVOKED');
  });

  it('changePassword racing a refresh of its session: one generation is issued once, and the newest cookie is live', async () => {
    // Each account: changePassword and a cookie refresh of the same session at once (the refresh a few ms later,
    // so that it lands while the password is being hashed). Both may succeed only one after the other.
    const accounts = await Promise.all(Array.from({ length: 12 }, () => cookieAccount()));
    const outcomes = await Promise.all(
      accounts.map(async ({ accessToken, cookie }, index) => {
        const [changed, refreshed] = await Promise.all([
          changePassword(accessToken, cookie),
          new Promise((wait) => setTimeout(wait, 1 + (index % 6))).then(() => refreshByCookie(cookie)),
        ]);
        return { changed, refreshed };
      }),
    );
    for (const { changed, refreshed } of outcomes) {
      expect(changed.errors).toBeUndefined();
      const byChange = setCookieOf(changed.headers)?.value as string;
      const generations = [byChange];
      if (refreshed.errors) expectUnauthenticated(refreshed, 'REFRESH_TOKEN_ROTATED');
      else generations.push(setCookieOf(refreshed.headers)?.value as string);
      const numbers = generations.map((value) => Number(value.split('.')[1]));
      // Never two tokens of one generation: the later rotation started from the earlier one's.
      expect(new Set(numbers).size).toBe(numbers.length);
      const newest = generations[numbers.indexOf(Math.max(...numbers))] as string;
      clock.advance(60_000);
      const next = await refreshByCookie(newest);
      expect(next.errors).toBeUndefined();
    }
  });
});
