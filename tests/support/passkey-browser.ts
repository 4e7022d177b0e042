// Passkeys in real Chromium: pages served from http://localhost origins (secure contexts) of our own, with
// @simplewebauthn/browser's bundle, and a CDP virtual authenticator (ctap2, internal, resident keys, user
// verification) that creates and uses credentials for navigator.credentials.create/get.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { CDPSession, Page } from 'playwright-core';
import { type Dialect, startTestApp, type TestApp } from './app.ts';
import { type Browser, launchChromium } from './chromium.ts';
import type { Gql } from './graphql.ts';
import { freePort } from './services.ts';

export interface PasskeyBrowser {
  /** The origin the app trusts (put it in WEBAUTHN_ORIGINS): http://localhost:PORT. */
  readonly origin: string;
  /** A second page origin on the same RP id (localhost), which the app does not trust. */
  readonly otherOrigin: string;
  readonly page: Page;
  readonly cdp: CDPSession;
  /** navigator.credentials.create with these options (startRegistration), in a page of `origin`. */
  register(optionsJSON: unknown, origin?: string): Promise<Record<string, unknown>>;
  /** navigator.credentials.get with these options (startAuthentication), in a page of `origin`. */
  authenticate(optionsJSON: unknown, origin?: string): Promise<Record<string, unknown>>;
  /** The virtual authenticator's credentials (id, rpId, signCount…). */
  credentials(): Promise<{ credentialId: string; rpId?: string; signCount: number; isResidentCredential: boolean }[]>;
  /** Removes every credential from the authenticator (a discoverable sign-in then has one to pick, or none). */
  clear(): Promise<void>;
  close(): Promise<void>;
}

/** What the page's script (the bundle) defines. */
interface PageGlobals {
  readonly SimpleWebAuthnBrowser: {
    startRegistration(input: { optionsJSON: unknown }): Promise<Record<string, unknown>>;
    startAuthentication(input: { optionsJSON: unknown }): Promise<Record<string, unknown>>;
  };
}

const bundle = () => {
  const require = createRequire(import.meta.url);
  const main = require.resolve('@simplewebauthn/browser');
  // .../@simplewebauthn/browser/script/index.js → .../dist/bundle/index.umd.min.js
  return readFileSync(join(dirname(main), '..', 'dist', 'bundle', 'index.umd.min.js'), 'utf8');
};

async function servePage(script: string): Promise<{ server: Server; origin: string }> {
  const port = await freePort();
  const server = createServer((request, response) => {
    if (request.url === '/swa.js') {
      response.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
      return;
    }
    response
      .writeHead(200, { 'content-type': 'text/html' })
      .end('<!doctype html><title>passkeys</title><script src="/swa.js"></script>');
  });
  await new Promise<void>((listening) => server.listen(port, '127.0.0.1', listening));
  return { server, origin: `http://localhost:${port}` };
}

/**
 * Turns WebAuthn on for `cdp`'s page and adds a CDP virtual authenticator as a platform passkey provider would be:
 * ctap2, internal, resident keys, user verification (verified), presence given; its id.
 */
export async function addVirtualAuthenticator(cdp: CDPSession): Promise<string> {
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return authenticatorId;
}

/** A test app that trusts a passkey browser's page origin for WebAuthn, and that browser. */
export interface PasskeyApp {
  readonly t: TestApp;
  readonly browser: PasskeyBrowser;
  /** Closes the app, then the browser. */
  close(): Promise<void>;
}

/**
 * Launches a passkey browser, then a test app on `dialect` whose relying party is `localhost` and whose WebAuthn
 * origin is the browser's trusted page (`env` adds to or overrides the app's environment).
 */
export async function startPasskeyApp(dialect: Dialect, env: Record<string, string> = {}): Promise<PasskeyApp> {
  const browser = await startPasskeyBrowser();
  try {
    const t = await startTestApp({
      dialect,
      env: { WEBAUTHN_RP_ID: 'localhost', WEBAUTHN_ORIGINS: browser.origin, ...env },
    });
    return {
      t,
      browser,
      async close() {
        await t.close();
        await browser.close();
      },
    };
  } catch (error) {
    await browser.close();
    throw error;
  }
}

/** Launches Chromium with a virtual authenticator and two page origins (see PasskeyBrowser). */
export async function startPasskeyBrowser(): Promise<PasskeyBrowser> {
  const script = bundle();
  const trusted = await servePage(script);
  const other = await servePage(script);
  let browser: Browser | undefined;
  try {
    browser = await launchChromium([`${trusted.origin}/`, `${other.origin}/`]);
    const page = browser.context.pages()[0] ?? (await browser.context.newPage());
    await page.goto(`${trusted.origin}/`);
    const cdp = await browser.context.newCDPSession(page);
    const authenticatorId = await addVirtualAuthenticator(cdp);
    let current = trusted.origin;
    const at = async (origin: string) => {
      if (origin === current) return;
      await page.goto(`${origin}/`);
      current = origin;
    };
    const opened = browser;
    return {
      origin: trusted.origin,
      otherOrigin: other.origin,
      page,
      cdp,
      async register(optionsJSON, origin = trusted.origin) {
        await at(origin);
        return page.evaluate(
          (optionsJSON) =>
            (globalThis as unknown as PageGlobals).SimpleWebAuthnBrowser.startRegistration({ optionsJSON }),
          optionsJSON,
        );
      },
      async authenticate(optionsJSON, origin = trusted.origin) {
        await at(origin);
        return page.evaluate(
          (optionsJSON) =>
            (globalThis as unknown as PageGlobals).SimpleWebAuthnBrowser.startAuthentication({ optionsJSON }),
          optionsJSON,
        );
      },
      async credentials() {
        const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
        return credentials;
      },
      async clear() {
        await cdp.send('WebAuthn.clearCredentials', { authenticatorId });
      },
      async close() {
        await opened.close();
        await Promise.all([trusted.server, other.server].map((s) => new Promise((done) => s.close(done))));
      },
    };
  } catch (error) {
    await browser?.close();
    await Promise.all([trusted.server, other.server].map((s) => new Promise((done) => s.close(done))));
    throw error;
  }
}

/**
 * Registers a passkey for the account signed in with `token`: startPasskeyRegistration, the browser's
 * navigator.credentials.create, finishPasskeyRegistration. Resolves to the passkey's id; throws on any error.
 */
export async function registerPasskey(gql: Gql, browser: PasskeyBrowser, token: string): Promise<string> {
  const started = await gql<{ startPasskeyRegistration: unknown }>(
    'mutation { startPasskeyRegistration }',
    {},
    { token },
  );
  if (!started.data) throw new Error(JSON.stringify(started.errors));
  const registered = await gql<{ finishPasskeyRegistration: { id: string } }>(
    'mutation($r: JSON!) { finishPasskeyRegistration(response: $r) { id } }',
    { r: await browser.register(started.data.startPasskeyRegistration) },
    { token },
  );
  const id = registered.data?.finishPasskeyRegistration.id;
  if (!id) throw new Error(JSON.stringify(registered.errors));
  return id;
}
