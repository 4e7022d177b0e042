// Browser sessions (API.md "Browser sessions"): tokenDelivery COOKIE puts the refresh token in an HttpOnly cookie
// and never in a body, refresh reads and rotates the cookie under every rotation rule, the answers that end the
// session clear it, only allowed origins may make the cookie act, and CORS with credentials for those origins.
// Through HTTP with the headers in view, on SQLite and MariaDB.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { createLogger } from '../src/log.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { TestClock } from './support/clock.ts';
import { ed25519Pem, expectError, expectUnauthenticated } from './support/expect.ts';
import { type FakeGitHub, startFakeGitHub } from './support/github.ts';
import {
  type GraphQLResponse,
  me,
  PAYLOAD,
  type Payload,
  REVOKE_SESSION,
  refreshToken,
  registerUser,
  uniqueEmail,
} from './support/graphql.ts';
import { githubAccount, LOGIN as OAUTH_LOGIN, REDIRECT, startSignIn } from './support/oauth.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';
import { openClient } from './support/subscriptions.ts';

const PASSWORD = 'correct horse battery';
const APP_ORIGIN = 'https://app.example.com';
const DEV_ORIGIN = 'http://localhost:5173';
const EVIL_ORIGIN = 'https://evil.example.net';
const DAY_SECONDS = 24 * 60 * 60;
/** REFRESH_TOKEN_TTL's default (30d), in whole seconds: the cookie's Max-Age while the test clock stands still. */
const TTL_SECONDS = 30 * DAY_SECONDS;

type CookiePayload = Omit<Payload, 'refreshToken'> & { refreshToken: string | null };

/** A Set-Cookie value as its name, value and attributes (names as written, in order). */
function parseSetCookie(header: string) {
  const [pair, ...attributes] = header.split(';').map((part) => part.trim());
  const at = (pair as string).indexOf('=');
  return {
    name: (pair as string).slice(0, at),
    value: (pair as string).slice(at + 1),
    attributes: attributes.map((attribute) => attribute),
  };
}

/** The one Set-Cookie of an answer (failing when there are several), or undefined. */
function setCookieOf(response: GraphQLResponse) {
  const headers = response.headers.getSetCookie();
  expect(headers.length).toBeLessThanOrEqual(1);
  return headers[0] === undefined ? undefined : parseSetCookie(headers[0]);
}

/** The attributes the contract asks for by default on this test server (http://localhost, not production). */
const setAttributes = (maxAge: number) => [`Max-Age=${maxAge}`, 'Path=/graphql', 'HttpOnly', 'SameSite=Strict'];
const CLEARED = ['Max-Age=0', 'Path=/graphql', 'HttpOnly', 'SameSite=Strict'];

describe.each(dialects())('cookie sessions on %s', (dialect) => {
  let t: TestApp;
  const clock = new TestClock(Date.parse('2026-06-01T00:00:00Z'));

  beforeAll(async () => {
    t = await startTestApp({ dialect, clock, env: { CORS_ORIGINS: APP_ORIGIN } });
  });
  afterAll(() => t?.close());

  const gql = <T = Record<string, any>>(
    query: string,
    variables: Record<string, unknown> = {},
    options: { token?: string; cookie?: string; origin?: string | null } = {},
  ) =>
    t.gql<T>(query, variables, {
      token: options.token,
      headers: {
        ...(options.cookie === undefined ? {} : { cookie: `refresh_token=${options.cookie}` }),
        ...(options.origin === null ? {} : { origin: options.origin ?? DEV_ORIGIN }),
      },
    });

  const REGISTER = `mutation($input: RegisterInput!) { register(input: $input) { ${PAYLOAD} } }`;
  const LOGIN = `mutation($input: LoginInput!) { login(input: $input) { ${PAYLOAD} } }`;
  const REFRESH = `mutation { refresh { ${PAYLOAD} } }`;

  /** A new account signed in with tokenDelivery COOKIE: its payload and the cookie's value. */
  async function cookieAccount() {
    const email = uniqueEmail('cookie');
    const response = await gql<{ register: CookiePayload }>(REGISTER, {
      input: { email, password: PASSWORD, tokenDelivery: 'COOKIE' },
    });
    const payload = response.data?.register;
    if (!payload) throw new Error(`register failed: ${JSON.stringify(response.errors)}`);
    const cookie = setCookieOf(response);
    if (!cookie) throw new Error('register set no cookie');
    return { email, payload, cookie: cookie.value };
  }

  const refreshByCookie = (cookie: string, origin?: string | null) =>
    gql<{ refresh: CookiePayload }>(REFRESH, {}, { cookie, origin });

  it('register with COOKIE: refreshToken is null and the token is an HttpOnly SameSite=Strict cookie on /graphql', async () => {
    const email = uniqueEmail('cookie');
    const response = await gql<{ register: CookiePayload }>(REGISTER, {
      input: { email, password: PASSWORD, tokenDelivery: 'COOKIE' },
    });
    expect(response.errors).toBeUndefined();
    const payload = response.data?.register as CookiePayload;
    expect(payload.refreshToken).toBeNull();
    expect(Date.parse(payload.refreshTokenExpiresAt)).toBe(clock.now() + TTL_SECONDS * 1000);
    const cookie = setCookieOf(response);
    expect(cookie?.name).toBe('refresh_token');
    expect(cookie?.value).toMatch(new RegExp(`^${payload.session.id}\\.0\\.[A-Za-z0-9_-]{43}\\.[A-Za-z0-9_-]{22}$`));
    expect(cookie?.attributes).toEqual(setAttributes(TTL_SECONDS));
    // Never in the body either, under any name.
    expect(JSON.stringify(response.data)).not.toContain(cookie?.value);
    expect((await me(t.gql, payload.accessToken)).data?.me).toEqual({ id: payload.user.id });
  });

  it('login with COOKIE does the same; BODY (the default) is unchanged and sets no cookie', async () => {
    const body = await registerUser(t.gql, { password: PASSWORD });
    expect(body.refreshToken).toMatch(/^[0-9a-f-]{36}\.0\./);
    const bodyLogin = await gql<{ login: CookiePayload }>(LOGIN, {
      input: { email: body.user.email, password: PASSWORD },
    });
    expect(typeof bodyLogin.data?.login.refreshToken).toBe('string');
    expect(bodyLogin.headers.getSetCookie()).toEqual([]);
    const explicitBody = await gql<{ login: CookiePayload }>(LOGIN, {
      input: { email: body.user.email, password: PASSWORD, tokenDelivery: 'BODY' },
    });
    expect(typeof explicitBody.data?.login.refreshToken).toBe('string');
    expect(explicitBody.headers.getSetCookie()).toEqual([]);
    // A BODY session refreshes with its argument as before, and sets no cookie.
    const rotated = await refreshToken(t.gql, explicitBody.data?.login.refreshToken as string);
    expect(typeof rotated.data?.refresh.refreshToken).toBe('string');
    expect(rotated.headers.getSetCookie()).toEqual([]);

    const cookieLogin = await gql<{ login: CookiePayload }>(LOGIN, {
      input: { email: body.user.email, password: PASSWORD, tokenDelivery: 'COOKIE' },
    });
    expect(cookieLogin.data?.login.refreshToken).toBeNull();
    const cookie = setCookieOf(cookieLogin);
    expect(cookie?.value.startsWith(`${cookieLogin.data?.login.session.id}.0.`)).toBe(true);
    expect(cookie?.attributes).toEqual(setAttributes(TTL_SECONDS));
  });

  it('refresh without an argument spends the cookie and sets the rotated one; the body never shows it', async () => {
    const { payload, cookie } = await cookieAccount();
    clock.advance(60_000);
    const response = await refreshByCookie(cookie);
    expect(response.errors).toBeUndefined();
    const rotated = response.data?.refresh as CookiePayload;
    expect(rotated.refreshToken).toBeNull();
    expect(rotated.session.id).toBe(payload.session.id);
    const next = setCookieOf(response);
    expect(next?.value.startsWith(`${payload.session.id}.1.`)).toBe(true);
    expect(next?.attributes).toEqual(setAttributes(TTL_SECONDS));
    expect(JSON.stringify(response.data)).not.toContain(next?.value);
    expect((await me(t.gql, rotated.accessToken)).data?.me).toEqual({ id: payload.user.id });
    // And the rotated cookie rotates again.
    const again = await refreshByCookie(next?.value as string);
    expect(setCookieOf(again)?.value.startsWith(`${payload.session.id}.2.`)).toBe(true);
  });

  it("refuses a cookie session's token as an argument (INVALID_REFRESH_TOKEN) without spending or ending it", async () => {
    const { cookie } = await cookieAccount();
    const asArgument = await refreshToken(t.gql, cookie);
    expectUnauthenticated(asArgument, 'INVALID_REFRESH_TOKEN');
    expect(asArgument.headers.getSetCookie()).toEqual([]);
    const stillGood = await refreshByCookie(cookie);
    expect(stillGood.errors).toBeUndefined();
    // A spent one as an argument is no reuse either: the session lives on.
    const spentAsArgument = await refreshToken(t.gql, cookie);
    expectUnauthenticated(spentAsArgument, 'INVALID_REFRESH_TOKEN');
    expect((await refreshByCookie(setCookieOf(stillGood)?.value as string)).data?.refresh.refreshToken).toBeNull();
  });

  it("refuses a BODY session's token in the cookie (INVALID_REFRESH_TOKEN) and clears that cookie", async () => {
    const body = await registerUser(t.gql, { password: PASSWORD });
    const response = await refreshByCookie(body.refreshToken);
    expectUnauthenticated(response, 'INVALID_REFRESH_TOKEN');
    expect(setCookieOf(response)?.attributes).toEqual(CLEARED);
    // Not spent: the argument still works.
    expect((await refreshToken(t.gql, body.refreshToken)).errors).toBeUndefined();
  });

  it('refresh without an argument or a cookie is AUTHENTICATION_REQUIRED', async () => {
    const response = await gql(REFRESH);
    expectUnauthenticated(response, 'AUTHENTICATION_REQUIRED');
    expect(response.headers.getSetCookie()).toEqual([]);
  });

  it('concurrent refreshes with one cookie: one winner sets the cookie, the rest are ROTATED and touch nothing', async () => {
    const { cookie, payload } = await cookieAccount();
    const answers = await Promise.all(Array.from({ length: 40 }, () => refreshByCookie(cookie)));
    const winners = answers.filter((answer) => answer.data?.refresh);
    expect(winners).toHaveLength(1);
    const winner = winners[0] as GraphQLResponse<{ refresh: CookiePayload }>;
    const next = setCookieOf(winner);
    expect(next?.value.startsWith(`${payload.session.id}.1.`)).toBe(true);
    for (const answer of answers) {
      if (answer === winner) continue;
      expectUnauthenticated(answer, 'REFRESH_TOKEN_ROTATED');
      expect(answer.headers.getSetCookie()).toEqual([]);
    }
    // The winner's cookie is the live one.
    expect((await refreshByCookie(next?.value as string)).errors).toBeUndefined();
  });

  it('a spent cookie within the grace period is ROTATED and leaves the cookie alone', async () => {
    const { cookie } = await cookieAccount();
    const first = await refreshByCookie(cookie);
    const next = setCookieOf(first)?.value as string;
    clock.advance(9_000);
    const late = await refreshByCookie(cookie);
    expectUnauthenticated(late, 'REFRESH_TOKEN_ROTATED');
    expect(late.headers.getSetCookie()).toEqual([]);
    expect((await refreshByCookie(next)).errors).toBeUndefined();
  });

  it('a spent cookie after the grace period is REUSE: the cookie is cleared and the session revoked', async () => {
    const { cookie } = await cookieAccount();
    const first = await refreshByCookie(cookie);
    const rotated = first.data?.refresh as CookiePayload;
    const next = setCookieOf(first)?.value as string;
    clock.advance(11_000);
    const replay = await refreshByCookie(cookie);
    expectUnauthenticated(replay, 'REFRESH_TOKEN_REUSE');
    expect(setCookieOf(replay)?.attributes).toEqual(CLEARED);
    expect(setCookieOf(replay)?.value).toBe('');
    expectUnauthenticated(await me(t.gql, rotated.accessToken), 'SESSION_REVOKED');
    // The winner's cookie died with the session, and is cleared when it comes back.
    const dead = await refreshByCookie(next);
    expectUnauthenticated(dead, 'SESSION_REVOKED');
    expect(setCookieOf(dead)?.attributes).toEqual(CLEARED);
  });

  it('logout clears the cookie of the session it ends', async () => {
    const { payload, cookie } = await cookieAccount();
    const response = await gql('mutation { logout }', {}, { token: payload.accessToken, cookie });
    expect(response.data).toEqual({ logout: true });
    expect(setCookieOf(response)?.attributes).toEqual(CLEARED);
    expectUnauthenticated(await refreshByCookie(cookie), 'SESSION_REVOKED');
  });

  it("revokeSession of the caller's own session clears its cookie; of another session it does not", async () => {
    const { email, payload, cookie } = await cookieAccount();
    const other = await gql<{ login: CookiePayload }>(LOGIN, { input: { email, password: PASSWORD } });
    const otherId = other.data?.login.session.id as string;
    const ofOther = await gql(REVOKE_SESSION, { id: otherId }, { token: payload.accessToken, cookie });
    expect(ofOther.data).toEqual({ revokeSession: true });
    expect(ofOther.headers.getSetCookie()).toEqual([]);
    const ofOwn = await gql(REVOKE_SESSION, { id: payload.session.id }, { token: payload.accessToken, cookie });
    expect(ofOwn.data).toEqual({ revokeSession: true });
    expect(setCookieOf(ofOwn)?.attributes).toEqual(CLEARED);
  });

  it('revokeOtherSessions leaves the caller’s cookie alone; deleteAccount clears it', async () => {
    const { payload, cookie } = await cookieAccount();
    const others = await gql('mutation { revokeOtherSessions }', {}, { token: payload.accessToken, cookie });
    expect(others.data).toEqual({ revokeOtherSessions: 0 });
    expect(others.headers.getSetCookie()).toEqual([]);
    const deleted = await gql(
      'mutation($p: String) { deleteAccount(password: $p) }',
      { p: PASSWORD },
      { token: payload.accessToken, cookie },
    );
    expect(deleted.data).toEqual({ deleteAccount: true });
    expect(setCookieOf(deleted)?.attributes).toEqual(CLEARED);
  });

  it("an admin's revocation clears the cookie only when it ends the session the cookie belongs to", async () => {
    const admin = await cookieAccount();
    await (t.app.orm.em.fork() as Em).nativeUpdate(User, { id: admin.payload.user.id }, { roles: 'USER,ADMIN' });
    // The roles reach a new session's token: sign in again, with the cookie.
    const signedIn = await gql<{ login: CookiePayload }>(LOGIN, {
      input: { email: admin.email, password: PASSWORD, tokenDelivery: 'COOKIE' },
    });
    const token = signedIn.data?.login.accessToken as string;
    const cookie = setCookieOf(signedIn)?.value as string;
    const other = await cookieAccount();
    const REVOKE = 'mutation($id: ID!) { revokeUserSessions(userId: $id) }';
    const ofOther = await gql(REVOKE, { id: other.payload.user.id }, { token, cookie });
    expect(ofOther.data).toEqual({ revokeUserSessions: 1 });
    expect(ofOther.headers.getSetCookie()).toEqual([]);
    const ofSelf = await gql(REVOKE, { id: admin.payload.user.id }, { token, cookie });
    expect(ofSelf.data).toEqual({ revokeUserSessions: 2 });
    expect(setCookieOf(ofSelf)?.attributes).toEqual(CLEARED);
  });

  it('changePassword of a cookie session rotates the cookie and keeps the token out of the body', async () => {
    const { payload, cookie } = await cookieAccount();
    const response = await gql<{ changePassword: CookiePayload }>(
      `mutation($input: ChangePasswordInput!) { changePassword(input: $input) { ${PAYLOAD} } }`,
      { input: { currentPassword: PASSWORD, newPassword: 'another horse battery' } },
      { token: payload.accessToken, cookie },
    );
    expect(response.errors).toBeUndefined();
    expect(response.data?.changePassword.refreshToken).toBeNull();
    const next = setCookieOf(response);
    expect(next?.value.startsWith(`${payload.session.id}.1.`)).toBe(true);
    expect(next?.attributes).toEqual(setAttributes(TTL_SECONDS));
    expect((await refreshByCookie(next?.value as string)).errors).toBeUndefined();
  });

  it('a cookie refresh from an origin that is not allowed is FORBIDDEN and spends nothing', async () => {
    const { cookie } = await cookieAccount();
    const response = await refreshByCookie(cookie, EVIL_ORIGIN);
    expectError(response, 'FORBIDDEN');
    expect(response.headers.getSetCookie()).toEqual([]);
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    const literalNull = await refreshByCookie(cookie, 'null');
    expectError(literalNull, 'FORBIDDEN');
    // CORS_ORIGINS, a loopback origin outside production, and no Origin at all (not a browser's cross-site call).
    const fromApp = await refreshByCookie(cookie, APP_ORIGIN);
    expect(fromApp.errors).toBeUndefined();
    const fromDev = await refreshByCookie(setCookieOf(fromApp)?.value as string, 'http://127.0.0.1:3000');
    expect(fromDev.errors).toBeUndefined();
    expect((await refreshByCookie(setCookieOf(fromDev)?.value as string, null)).errors).toBeUndefined();
  });

  it('reads the cookie only for refresh: other operations from any origin ignore it', async () => {
    const { payload, cookie } = await cookieAccount();
    const query = await gql('{ me { id } }', {}, { token: payload.accessToken, cookie, origin: EVIL_ORIGIN });
    expect(query.data).toEqual({ me: { id: payload.user.id } });
    expect(query.headers.getSetCookie()).toEqual([]);
    const bodyLogin = await gql<{ login: CookiePayload }>(
      LOGIN,
      { input: { email: payload.user.email, password: PASSWORD } },
      { cookie, origin: EVIL_ORIGIN },
    );
    expect(typeof bodyLogin.data?.login.refreshToken).toBe('string');
    expect(bodyLogin.headers.getSetCookie()).toEqual([]);
    // Nothing spent it.
    expect((await refreshByCookie(cookie)).errors).toBeUndefined();
  });

  it('a cookie refresh without what CSRF prevention asks for is refused before anything runs', async () => {
    const { cookie } = await cookieAccount();
    const response = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', cookie: `refresh_token=${cookie}`, origin: DEV_ORIGIN },
      body: JSON.stringify({ query: REFRESH }),
    });
    expect(response.status).toBe(403);
    expect(response.headers.getSetCookie()).toEqual([]);
    const body = (await response.json()) as { errors: { message: string }[] };
    expect(body.errors[0]?.message).toBe('Required CSRF header(s) not present');
    // The same cookie, untouched, still refreshes.
    expect((await refreshByCookie(cookie)).errors).toBeUndefined();
  });

  it('two refresh cookies of one name (one planted by a sibling domain) are refused and ours is cleared', async () => {
    const { cookie } = await cookieAccount();
    const planted = await cookieAccount();
    const response = await t.gql(
      REFRESH,
      {},
      { headers: { cookie: `refresh_token=${planted.cookie}; refresh_token=${cookie}` } },
    );
    expectUnauthenticated(response, 'INVALID_REFRESH_TOKEN');
    expect(setCookieOf(response)?.attributes).toEqual(CLEARED);
  });

  it('CORS: allowed origins get themselves with credentials, others no CORS header; dev preflight succeeds', async () => {
    for (const origin of [DEV_ORIGIN, 'http://127.0.0.1:8080', APP_ORIGIN]) {
      const preflight = await fetch(`${t.url}/graphql`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type, authorization',
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(origin);
      expect(preflight.headers.get('access-control-allow-credentials')).toBe('true');
      const allowed = preflight.headers.get('access-control-allow-headers')?.split(/, */) ?? [];
      expect(allowed).toEqual(expect.arrayContaining(['content-type', 'authorization']));
      expect(preflight.headers.get('access-control-allow-methods')?.split(/, */)).toContain('POST');
      const answer = await gql('{ __typename }', {}, { origin });
      expect(answer.headers.get('access-control-allow-origin')).toBe(origin);
      expect(answer.headers.get('access-control-allow-credentials')).toBe('true');
    }
    // Public documents keep their own `*` (shared by caches), never one origin with credentials.
    const jwks = await fetch(`${t.url}/.well-known/jwks.json`, { headers: { origin: DEV_ORIGIN } });
    expect(jwks.headers.get('access-control-allow-origin')).toBe('*');
    expect(jwks.headers.get('access-control-allow-credentials')).toBeNull();
    for (const origin of [EVIL_ORIGIN, 'null', 'http://localhost.evil.example:5173', `${APP_ORIGIN}/`]) {
      const preflight = await fetch(`${t.url}/graphql`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST' },
      });
      expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
      expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();
      const answer = await gql('{ __typename }', {}, { origin });
      expect(answer.headers.get('access-control-allow-origin')).toBeNull();
    }
  });
});

describe('cookie sessions in production', () => {
  let t: TestApp;
  const productionEnv = (env: Record<string, string>) => ({
    NODE_ENV: 'production',
    JWT_PRIVATE_KEY: ed25519Pem(),
    SMTP_URL: 'smtp://127.0.0.1:1',
    MAIL_FROM: 'Auth <no-reply@example.com>',
    CORS_ORIGINS: APP_ORIGIN,
    ...env,
  });
  afterAll(() => t?.close());

  async function cookieOf(app: TestApp) {
    const response = await app.gql(
      `mutation($input: RegisterInput!) { register(input: $input) { refreshToken } }`,
      { input: { email: uniqueEmail('prod'), password: PASSWORD, tokenDelivery: 'COOKIE' } },
      { headers: { origin: APP_ORIGIN } },
    );
    expect(response.data).toEqual({ register: { refreshToken: null } });
    return setCookieOf(response);
  }

  it('sets Secure even for an http://localhost PUBLIC_URL, and allows no loopback origin', async () => {
    t = await startTestApp({ clock: new TestClock(), env: productionEnv({ PUBLIC_URL: 'http://localhost:4000' }) });
    const cookie = await cookieOf(t);
    expect(cookie?.attributes).toEqual([
      `Max-Age=${TTL_SECONDS}`,
      'Path=/graphql',
      'HttpOnly',
      'Secure',
      'SameSite=Strict',
    ]);
    for (const origin of [DEV_ORIGIN, 'http://127.0.0.1:5173']) {
      const preflight = await fetch(`${t.url}/graphql`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST' },
      });
      expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
      const refresh = await t.gql(
        'mutation { refresh { accessToken } }',
        {},
        {
          headers: { origin, cookie: `refresh_token=${cookie?.value}` },
        },
      );
      expectError(refresh, 'FORBIDDEN');
    }
    const preflight = await fetch(`${t.url}/graphql`, {
      method: 'OPTIONS',
      headers: { origin: APP_ORIGIN, 'access-control-request-method': 'POST' },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    expect(preflight.headers.get('access-control-allow-credentials')).toBe('true');
    await t.close();
  });

  it('takes the cookie name, Domain and SameSite=Lax from the configuration', async () => {
    t = await startTestApp({
      clock: new TestClock(),
      env: productionEnv({
        PUBLIC_URL: 'https://auth.example.com',
        REFRESH_COOKIE_NAME: 'sid',
        REFRESH_COOKIE_DOMAIN: 'example.com',
        REFRESH_COOKIE_SAMESITE: 'Lax',
      }),
    });
    const cookie = await cookieOf(t);
    expect(cookie?.name).toBe('sid');
    expect(cookie?.attributes).toEqual([
      `Max-Age=${TTL_SECONDS}`,
      'Path=/graphql',
      'Domain=example.com',
      'HttpOnly',
      'Secure',
      'SameSite=Lax',
    ]);
    const refresh = await t.gql(
      'mutation { refresh { refreshToken } }',
      {},
      {
        headers: { origin: APP_ORIGIN, cookie: `sid=${cookie?.value}` },
      },
    );
    expect(refresh.data).toEqual({ refresh: { refreshToken: null } });
    expect(setCookieOf(refresh)?.name).toBe('sid');
  });
});

describe('cookie sessions: transport edges', () => {
  let t: TestApp;
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  beforeAll(async () => {
    t = await startTestApp({ logger: createLogger({ logLevel: 'trace' }, stream), env: { LOG_LEVEL: 'trace' } });
  });
  afterAll(() => t?.close());

  it('never logs the refresh cookie, coming or going, at trace level', async () => {
    const response = await t.gql(`mutation($input: RegisterInput!) { register(input: $input) { accessToken } }`, {
      input: { email: uniqueEmail('log'), password: PASSWORD, tokenDelivery: 'COOKIE' },
    });
    const first = setCookieOf(response)?.value as string;
    const refreshed = await t.gql(
      'mutation { refresh { accessToken } }',
      {},
      { headers: { cookie: `refresh_token=${first}` } },
    );
    const second = setCookieOf(refreshed)?.value as string;
    expect(second.length).toBeGreaterThan(40);
    // A refused one (a token as an argument) too.
    await refreshToken(t.gql, second);
    const log = lines.join('');
    expect(log.length).toBeGreaterThan(0);
    for (const token of [first, second]) {
      expect(log).not.toContain(token);
      expect(log).not.toContain(token.split('.')[2]);
    }
  });

  it('refuses tokenDelivery COOKIE over a WebSocket, where no cookie can be set (BAD_USER_INPUT, nothing signed in)', async () => {
    const email = uniqueEmail('ws');
    await registerUser(t.gql, { email, password: PASSWORD });
    const { client } = openClient(t.url);
    try {
      const result = await new Promise<Record<string, any>>((resolve, reject) => {
        client.subscribe(
          {
            query: 'mutation($input: LoginInput!) { login(input: $input) { accessToken } }',
            variables: { input: { email, password: PASSWORD, tokenDelivery: 'COOKIE' } },
          },
          { next: resolve, error: reject, complete: () => {} },
        );
      });
      expect(result.data ?? null).toBeNull();
      expect(result.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'tokenDelivery' });
    } finally {
      await client.dispose();
    }
    const sessions = await t.gql<{ login: Payload }>(
      `mutation($input: LoginInput!) { login(input: $input) { ${PAYLOAD} } }`,
      { input: { email, password: PASSWORD } },
    );
    const list = await t.gql('{ me { sessions { id } } }', {}, { token: sessions.data?.login.accessToken });
    // The registration's and this login's: the refused one opened none.
    expect(list.data?.me.sessions).toHaveLength(2);
  });
});

describe('refresh cookie configuration', () => {
  const noFiles = () => '';
  const production = {
    NODE_ENV: 'production',
    JWT_PRIVATE_KEY: ed25519Pem(),
    SMTP_URL: 'smtp://mail.test',
    MAIL_FROM: 'a@b.test',
    MFA_ENCRYPTION_KEY: Buffer.alloc(32, 4).toString('base64'),
  };

  it('leaves Secure out only for an http loopback PUBLIC_URL outside production', () => {
    const secure = (env: Record<string, string>) => loadConfig(env, noFiles).refreshCookie.secure;
    expect(secure({})).toBe(false);
    expect(secure({ PUBLIC_URL: 'http://127.0.0.1:4000' })).toBe(false);
    expect(secure({ PUBLIC_URL: 'http://localhost' })).toBe(false);
    expect(secure({ PUBLIC_URL: 'https://localhost:4000' })).toBe(true);
    expect(secure({ PUBLIC_URL: 'http://auth.example.com' })).toBe(true);
    expect(secure({ PUBLIC_URL: 'http://localhost.example.com' })).toBe(true);
    expect(secure({ ...production, PUBLIC_URL: 'http://localhost:4000' })).toBe(true);
  });

  it('refuses a bad name, domain or SameSite, naming the variable', () => {
    expect(() => loadConfig({ REFRESH_COOKIE_NAME: 'a b' }, noFiles)).toThrow(
      /^REFRESH_COOKIE_NAME: expected a cookie name/,
    );
    expect(() => loadConfig({ REFRESH_COOKIE_NAME: 'a;b' }, noFiles)).toThrow(/^REFRESH_COOKIE_NAME: /);
    expect(() => loadConfig({ REFRESH_COOKIE_DOMAIN: 'example.com; Path=/' }, noFiles)).toThrow(
      /^REFRESH_COOKIE_DOMAIN: expected a domain name/,
    );
    expect(() => loadConfig({ REFRESH_COOKIE_SAMESITE: 'None' }, noFiles)).toThrow(
      /^REFRESH_COOKIE_SAMESITE: expected Strict or Lax/,
    );
    expect(
      loadConfig({ REFRESH_COOKIE_DOMAIN: '.example.com', REFRESH_COOKIE_SAMESITE: 'Lax' }, noFiles).refreshCookie,
    ).toEqual({
      name: 'refresh_token',
      domain: '.example.com',
      sameSite: 'Lax',
      secure: false,
    });
  });
});

describe.each(dialects())('cookie sessions through OAuth on %s', (dialect) => {
  let t: TestApp;
  let github: FakeGitHub;
  const clock = new TestClock();
  beforeAll(async () => {
    github = await startFakeGitHub();
    t = await startTestApp({ dialect, clock, env: { OAUTH_REDIRECT_URIS: REDIRECT, ...github.env } });
  });
  afterAll(async () => {
    await t?.close();
    await github?.stop();
  });

  it('loginWithOAuth with COOKIE (a new account, then the linked one) sets the cookie and shows no token', async () => {
    const account = githubAccount();
    for (const round of [0, 1]) {
      const { authorizationUrl } = await startSignIn(t.gql, 'github');
      const back = github.authorize(authorizationUrl, account);
      const input = {
        provider: 'github',
        code: back.searchParams.get('code'),
        state: back.searchParams.get('state'),
        tokenDelivery: 'COOKIE',
      };
      const response = await t.gql<{ loginWithOAuth: CookiePayload }>(OAUTH_LOGIN, { input });
      expect(response.errors, `round ${round}`).toBeUndefined();
      const payload = response.data?.loginWithOAuth as CookiePayload;
      expect(payload.refreshToken).toBeNull();
      const cookie = setCookieOf(response);
      expect(cookie?.value.startsWith(`${payload.session.id}.0.`)).toBe(true);
      expect(cookie?.attributes).toEqual(setAttributes(TTL_SECONDS));
      const refreshed = await t.gql(
        'mutation { refresh { refreshToken } }',
        {},
        {
          headers: { cookie: `refresh_token=${cookie?.value}` },
        },
      );
      expect(refreshed.data).toEqual({ refresh: { refreshToken: null } });
    }
  });
});

describe.skipIf(!serviceAvailable('redis-server'))('cookie sessions with Redis', () => {
  let t: TestApp;
  let redis: RunningService;
  const clock = new TestClock();
  beforeAll(async () => {
    redis = await startRedis();
    t = await startTestApp({ clock, env: { REDIS_URL: redis.url } });
  });
  afterAll(async () => {
    await t?.close();
    await redis?.stop();
  });

  const register = async () => {
    const response = await t.gql<{ register: CookiePayload }>(
      `mutation($input: RegisterInput!) { register(input: $input) { ${PAYLOAD} } }`,
      { input: { email: uniqueEmail('redis'), password: PASSWORD, tokenDelivery: 'COOKIE' } },
    );
    return { payload: response.data?.register as CookiePayload, cookie: setCookieOf(response)?.value as string };
  };
  const refresh = (cookie: string) =>
    t.gql('mutation { refresh { refreshToken } }', {}, { headers: { cookie: `refresh_token=${cookie}` } });

  it('clears the cookie on logout and on REUSE when revocations travel through Redis', async () => {
    const first = await register();
    const logout = await t.gql(
      'mutation { logout }',
      {},
      {
        token: first.payload.accessToken,
        headers: { cookie: `refresh_token=${first.cookie}` },
      },
    );
    expect(logout.data).toEqual({ logout: true });
    expect(setCookieOf(logout)?.attributes).toEqual(CLEARED);

    const second = await register();
    const rotated = await refresh(second.cookie);
    expect(rotated.data).toEqual({ refresh: { refreshToken: null } });
    clock.advance(11_000);
    const replay = await refresh(second.cookie);
    expectUnauthenticated(replay, 'REFRESH_TOKEN_REUSE');
    expect(setCookieOf(replay)?.attributes).toEqual(CLEARED);
  });
});
