// Browser sessions in a real browser (Chromium), from a page on another origin of the same site: a request sent
// without credentials (fetch's default, and Apollo's and urql's) neither carries the refresh cookie nor stores the
// Set-Cookie of its answer, so an operation that would rotate a cookie session (changePassword) is refused there,
// and the browser's cookie stays the live one; with credentials it rotates the cookie in the browser's jar.
import { createServer, type Server } from 'node:http';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { type Browser, launchChromium } from './support/chromium.ts';
import { TestClock } from './support/clock.ts';
import { uniqueEmail } from './support/graphql.ts';
import { freePort, serviceAvailable } from './support/services.ts';

const PASSWORD = 'correct horse battery';

describe.skipIf(!serviceAvailable('chromium'))('cookie sessions in Chromium, from another origin', () => {
  const clock = new TestClock(Date.parse('2026-06-01T00:00:00Z'));
  let t: TestApp;
  let pageServer: Server;
  let browser: Browser;
  let page: Page;
  let api: string;

  beforeAll(async () => {
    const apiPort = await freePort();
    let pagePort = await freePort();
    while (pagePort === apiPort) pagePort = await freePort();
    t = await startTestApp({ clock, env: { PORT: String(apiPort), PUBLIC_URL: `http://localhost:${apiPort}` } });
    api = `http://localhost:${apiPort}/graphql`;
    pageServer = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>app</title>');
    });
    await new Promise<void>((listening) => pageServer.listen(pagePort, '127.0.0.1', listening));
    browser = await launchChromium([`http://localhost:${apiPort}/`, `http://localhost:${pagePort}/`]);
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
    await page.goto(`http://localhost:${pagePort}/`);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((done) => (pageServer ? pageServer.close(done) : done(undefined)));
    await t?.close();
  });

  /** A GraphQL POST from the page, with fetch's `credentials` as given; the answer's body. */
  const post = (query: string, variables: object, credentials: 'include' | 'same-origin', token?: string) =>
    page.evaluate(
      async ({ api, query, variables, credentials, token }) => {
        const response = await fetch(api, {
          method: 'POST',
          credentials,
          headers: {
            'content-type': 'application/json',
            'x-graphql-yoga-csrf': '1',
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
          body: JSON.stringify({ query, variables }),
        });
        return response.json();
      },
      { api, query, variables, credentials, token },
    ) as Promise<{ data?: any; errors?: { extensions?: Record<string, unknown> }[] }>;

  const refreshCookie = async () =>
    (await browser.context.cookies(api)).find((cookie) => cookie.name === 'refresh_token')?.value;

  const CHANGE = 'mutation($input: ChangePasswordInput!) { changePassword(input: $input) { refreshToken } }';
  const REFRESH = 'mutation { refresh { accessToken refreshToken } }';

  it('changePassword without credentials is refused and the cookie lives on; with credentials it rotates the cookie', async () => {
    const registered = await post(
      'mutation($input: RegisterInput!) { register(input: $input) { accessToken refreshToken } }',
      { input: { email: uniqueEmail('browser'), password: PASSWORD, tokenDelivery: 'COOKIE' } },
      'include',
    );
    expect(registered.data?.register.refreshToken).toBeNull();
    const first = await refreshCookie();
    expect(first).toMatch(/\.0\./);
    const token = registered.data?.register.accessToken as string;
    const input = { currentPassword: PASSWORD, newPassword: 'another horse battery' };

    // Apollo's and urql's default: the browser sends no cookie and would drop a Set-Cookie.
    const refused = await post(CHANGE, { input }, 'same-origin', token);
    expect(refused.errors?.map((error) => error.extensions?.code)).toEqual(['BAD_USER_INPUT']);
    expect(await refreshCookie()).toBe(first);
    // Well past the reuse grace, the browser's cookie is still the live one.
    clock.advance(60_000);
    const refreshed = await post(REFRESH, {}, 'include');
    expect(refreshed.errors).toBeUndefined();
    const second = await refreshCookie();
    expect(second).toMatch(/\.1\./);

    const changed = await post(CHANGE, { input }, 'include', refreshed.data?.refresh.accessToken);
    expect(changed.errors).toBeUndefined();
    expect(changed.data?.changePassword.refreshToken).toBeNull();
    expect(await refreshCookie()).toMatch(/\.2\./);
    clock.advance(60_000);
    expect((await post(REFRESH, {}, 'include')).errors).toBeUndefined();
  });
});
