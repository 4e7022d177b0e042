// GraphiQL in a real browser (Debian's Chromium through playwright-core), with no network but this server:
// register, put the token in the Headers tab, run `me`, and watch sessionRevoked arrive over WebSocket.
import type { Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { type Browser, launchChromium } from './support/chromium.ts';
import { loginUser, type Payload, uniqueEmail } from './support/graphql.ts';
import { serviceAvailable } from './support/services.ts';

const available = serviceAvailable('chromium');

const QUERY_EDITOR = '.graphiql-query-editor .monaco-editor';
const HEADERS_EDITOR = '.monaco-editor[data-uri$="headers.json"]';

/** The text a Monaco editor shows (its rendered lines, with Monaco's non-breaking spaces made plain). */
async function editorText(page: Page, editor: string): Promise<string> {
  const text = (await page.locator(`${editor} .view-lines`).first().textContent()) ?? '';
  return text
    .replace(/\u00a0/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * Replaces the content of a Monaco editor (typing would fight its auto-closing brackets), and checks that the
 * editor holds it: keys sent before the editor has focus, or GraphiQL restoring its tab state over what was just
 * typed, would otherwise leave the old operation in place and the test waiting for a request that never comes.
 */
async function setEditor(page: Page, editor: string, text: string) {
  const wanted = text.replace(/\s+/g, ' ').trim();
  for (let attempt = 1; ; attempt++) {
    await page.locator(editor).first().click();
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.press('Delete');
    await page.keyboard.insertText(text);
    const shown = await editorText(page, editor);
    if (shown === wanted) return;
    if (attempt === 3) throw new Error(`the editor holds ${JSON.stringify(shown)} instead of the text typed`);
  }
}

/** An operation's POST to /graphql (not GraphiQL's own introspection). */
const operationPost = (request: Request) =>
  request.url().endsWith('/graphql') && request.method() === 'POST' && !(request.postData() ?? '').includes('__schema');

/**
 * Runs the operation in the query editor and resolves with the JSON body of its HTTP response. GraphiQL takes the
 * editor's text into its state a moment after the edit: a click before that runs nothing, so a click that sends
 * no request within a few seconds (a browser sends at once; only the answer may take long) is made again.
 */
async function run(page: Page): Promise<{ data?: any; errors?: any[] }> {
  for (let attempt = 1; ; attempt++) {
    const sent = page.waitForRequest(operationPost, { timeout: 5_000 });
    await page.locator('.graphiql-execute-button').click();
    let request: Request;
    try {
      request = await sent;
    } catch (error) {
      if (attempt < 3) continue;
      const shown = await editorText(page, QUERY_EDITOR).catch(() => '(unreadable)');
      throw new Error(`GraphiQL sent no request for ${JSON.stringify(shown)}: ${(error as Error).message}`);
    }
    const response = await request.response();
    if (!response) throw new Error(`no answer to ${request.postData()}`);
    return response.json();
  }
}

async function responsePane(page: Page, text: string) {
  await page.locator('.graphiql-response').getByText(text).first().waitFor({ timeout: 10_000 });
}

describe.skipIf(!available)('GraphiQL in Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  /** The account registered through GraphiQL, whose token the Headers tab then holds. */
  let email: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { GRAPHIQL: 'true' } });
    // Only this server may be reached: a CDN request would fail the page, and the test says which.
    browser = await launchChromium([t.url]);
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
  });

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('serves a page whose script, styles and workers all come from this server', async () => {
    const failed: string[] = [];
    const errors: string[] = [];
    page.on('requestfailed', (request) => failed.push(request.url()));
    page.on('pageerror', (error) => errors.push(error.message));
    // Ready once the editor is up and GraphiQL has its schema (the introspection answer).
    const introspection = page.waitForResponse(
      async (r) => r.url().endsWith('/graphql') && (r.request().postData() ?? '').includes('__schema'),
      { timeout: 20_000 },
    );
    const response = await page.goto(`${t.url}/graphql`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
    await page.locator(QUERY_EDITOR).first().waitFor({ timeout: 20_000 });
    expect((await introspection).status()).toBe(200);
    expect(failed).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('registers, sends the token from the Headers tab and shows me', async () => {
    email = uniqueEmail('graphiql');
    await setEditor(
      page,
      QUERY_EDITOR,
      `mutation { register(input: { email: "${email}", password: "correct horse battery", displayName: "Ada" }) { accessToken user { id email } } }`,
    );
    const registered = await run(page);
    expect(registered.errors).toBeUndefined();
    const token = registered.data.register.accessToken as string;
    await responsePane(page, 'accessToken');

    await page.getByRole('button', { name: 'Headers' }).click();
    await setEditor(page, HEADERS_EDITOR, `{ "Authorization": "Bearer ${token}" }`);
    await setEditor(page, QUERY_EDITOR, '{ me { id email displayName } }');
    const me = await run(page);
    expect(me).toEqual({ data: { me: { id: registered.data.register.user.id, email, displayName: 'Ada' } } });
    await responsePane(page, email);
    if (process.env.GRAPHIQL_SCREENSHOT) await page.screenshot({ path: process.env.GRAPHIQL_SCREENSHOT });
  });

  it('runs the sessionRevoked subscription over WebSocket with the token from the Headers tab', async () => {
    // The header still holds the token of the session registered above: revoke another session of that user.
    const other = (await loginUser(t.gql, email, 'correct horse battery')).data?.login as Payload;

    await setEditor(page, QUERY_EDITOR, 'subscription { sessionRevoked { sessionId reason } }');
    // The subscription is live once the server holds it; then a revocation must show up in the response pane. As
    // in `run`, a click before GraphiQL has taken the editor's text starts nothing, and is made again (only then:
    // a second click on a running subscription would stop it).
    const live = async () =>
      (await fetch(`${t.url}/metrics`).then((r) => r.text())).includes('graphql_ws_subscriptions_open 1');
    for (let attempt = 1; attempt <= 3 && !(await live()); attempt++) {
      await page.locator('.graphiql-execute-button').click();
      await expect
        .poll(live, { timeout: 5_000 })
        .toBe(true)
        .catch(() => undefined);
    }
    expect(await live()).toBe(true);
    const revoked = await t.gql('mutation { logout }', {}, { token: other.accessToken });
    expect(revoked.errors).toBeUndefined();
    await responsePane(page, other.session.id);
    await responsePane(page, 'LOGOUT');
  });
});
