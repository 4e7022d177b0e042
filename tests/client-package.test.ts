// The client package as an app gets it: `npm pack` of packages/client installed alone into a fresh project with
// @apollo/client and @urql/core from the registry; no server dependency comes along; a file using every export
// type-checks under strict; each entry point loads in plain Node; and, bundled by Vite, it runs in Chromium from a
// page on another origin of the same site in cookie mode, the refresh token never reaching the page.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { type Browser, launchChromium } from './support/chromium.ts';
import { loginUser, type Payload, registerUser } from './support/graphql.ts';
import { scrapeMetrics } from './support/metrics.ts';
import { installedPackages, installProject, type PackedPackage, packWorkspace } from './support/packages.ts';
import { freePort, serviceAvailable } from './support/services.ts';
import { eventually } from './support/subscriptions.ts';

const ROOT = resolve(import.meta.dirname, '..');
const PASSWORD = 'correct horse battery';
const COOKIE = 'refresh_token';

/** Packages only the server needs: none may be installed with the client. */
const SERVER_ONLY = [
  'graphql-auth-server',
  'bcrypt',
  'mysql2',
  'ioredis',
  'nodemailer',
  'pino',
  'graphql-yoga',
  'jose',
  'kysely',
  'openid-client',
  'prom-client',
  'rate-limiter-flexible',
  'zod',
  'ws',
];

/** The app: every export of every entry point, wired as the README shows; exposed to the test as `window.app`. */
const APP_SOURCE = `
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from '@apollo/client';
import { Client, cacheExchange, fetchExchange } from '@urql/core';
import {
  type AuthClient,
  AuthClientError,
  type AuthClientEvents,
  type AuthClientOptions,
  type AuthTokens,
  CSRF_HEADER,
  createAuthClient,
  type GraphQLErrorLike,
  type LoginInput,
  memoryStorage,
  operations,
  type RegisterInput,
  type SignedInFragment,
  type SignedOutEvent,
  type SignInInput,
  type TokenDelivery,
  type TokenStorage,
  UNAUTHENTICATED_REASONS,
  type UnauthenticatedReason,
  unauthenticatedReason,
  webStorage,
} from 'graphql-auth-client';
import { createAuthLink } from 'graphql-auth-client/apollo';
import { MeDocument, type MeQuery } from 'graphql-auth-client/operations';
import { authExchange } from 'graphql-auth-client/urql';

const api = new URLSearchParams(location.search).get('api') ?? '';
const delivery: TokenDelivery = 'COOKIE';
const options: AuthClientOptions = { url: api, tokenDelivery: delivery };
const auth: AuthClient = createAuthClient(options);
const signOuts: SignedOutEvent[] = [];
const onSignedOut: AuthClientEvents['signedOut'] = (event) => signOuts.push(event);
auth.on('signedOut', onSignedOut);
// Type-level uses: the storage adapters (unused in cookie mode) and the inputs.
const storages: TokenStorage[] = [memoryStorage(), webStorage(sessionStorage, 'unused')];
const sample: SignInInput<LoginInput> | SignInInput<RegisterInput> = { email: 'x@example.com', password: 'x' };
const reasons: readonly UnauthenticatedReason[] = UNAUTHENTICATED_REASONS;

const apollo = new ApolloClient({
  link: ApolloLink.from([createAuthLink(auth), new HttpLink({ uri: api })]),
  cache: new InMemoryCache(),
  defaultOptions: { query: { fetchPolicy: 'network-only' } },
});
const urql = new Client({ url: api, exchanges: [cacheExchange, authExchange(auth), fetchExchange], requestPolicy: 'network-only' });

function describeError(error: unknown) {
  if (error instanceof AuthClientError) {
    const errors: readonly GraphQLErrorLike[] = error.errors;
    return { code: error.code, reason: error.reason ?? unauthenticatedReason(errors) ?? null };
  }
  return { code: 'OTHER', reason: String(error) };
}

function summary(tokens: AuthTokens | null) {
  return tokens && { sessionId: tokens.sessionId, userId: tokens.userId, refreshToken: tokens.refreshToken };
}

const app = {
  csrfHeader: CSRF_HEADER,
  checks: storages.length + reasons.length + Object.keys(sample).length,
  async anonymousMe() {
    const result = await urql.query(MeDocument, {}).toPromise();
    return { data: result.data ?? null, error: result.error?.message ?? null };
  },
  async login(email: string, password: string) {
    try {
      const payload: SignedInFragment = await auth.login({ email, password });
      return { refreshToken: payload.refreshToken, sessionId: payload.session.id, tokens: summary(auth.tokens) };
    } catch (error) {
      return describeError(error);
    }
  },
  async meApollo() {
    const result = await apollo.query({ query: operations.MeDocument });
    return result.data?.me?.email ?? null;
  },
  async meUrql() {
    const result = await urql.query(MeDocument, {}).toPromise();
    const data: MeQuery | undefined = result.data;
    return data?.me?.email ?? result.error?.message ?? null;
  },
  async refreshTogether(count: number) {
    const all = await Promise.all(Array.from({ length: count }, () => auth.refresh()));
    return new Set(all.map((tokens) => tokens.accessToken)).size;
  },
  async restore() {
    try {
      return summary(await auth.restore());
    } catch (error) {
      return describeError(error);
    }
  },
  async logout() {
    await auth.logout();
    return summary(auth.tokens);
  },
  tokens: () => summary(auth.tokens),
  signOuts: () => signOuts,
  storage: () => [localStorage, sessionStorage].flatMap((area) => Object.keys(area).map((key) => area.getItem(key))),
  cookies: () => document.cookie,
};
Object.assign(window, { app });
`;

/** Records, inside the page, every fetch it makes and every response body it can read. */
const RECORD_FETCH = `
window.__exchanges = [];
const originalFetch = window.fetch;
window.fetch = async function (input, init) {
  const request = new Request(input, init);
  const body = request.method === 'GET' ? '' : await request.clone().text();
  const response = await originalFetch.call(this, request);
  const text = await response.clone().text().catch(() => '');
  window.__exchanges.push({ method: request.method, url: request.url, body, response: text });
  return response;
};
`;

interface Exchange {
  method: string;
  url: string;
  body: string;
  response: string;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** A static server for the built app, at /graphql/ so that only HttpOnly (not the cookie's Path) hides the cookie. */
function serveStatic(dir: string, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://x').pathname.replace(/^\/graphql\/?/, '/');
    const file = join(dir, path === '/' ? 'index.html' : path);
    if (!file.startsWith(dir) || !existsSync(file)) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream' });
    response.end(readFileSync(file));
  });
  return new Promise((done) => server.listen(port, '127.0.0.1', () => done(server)));
}

/** One packed and installed project for the whole file: packing and installing take most of its time. */
const work = mkdtempSync(join(tmpdir(), 'client-package-'));
const project = join(work, 'app');
let packed: PackedPackage;

beforeAll(() => {
  mkdirSync(project);
  packed = packWorkspace('graphql-auth-client', work);
  installProject(project, [packed.tarball, '@apollo/client@^4', '@urql/core@^6', 'graphql@^16']);
  mkdirSync(join(project, 'src'));
  writeFileSync(join(project, 'src', 'main.ts'), APP_SOURCE);
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** tsc (the repository's) on the fresh project; its diagnostics when it fails. */
function typeCheck(config: string): { ok: boolean; output: string } {
  try {
    execFileSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', config], {
      cwd: project,
      encoding: 'utf8',
      stdio: 'pipe',
    });
    return { ok: true, output: '' };
  } catch (error) {
    return { ok: false, output: String((error as { stdout?: string }).stdout) };
  }
}

describe('the packed client package in a fresh project', () => {
  it('packs built JavaScript, declarations and the generated documents, and no sources', () => {
    expect(packed.files).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'dist/index.js',
        'dist/index.d.ts',
        'dist/apollo.js',
        'dist/apollo.d.ts',
        'dist/urql.js',
        'dist/urql.d.ts',
        'dist/operations.js',
        'dist/operations.d.ts',
        'dist/generated/graphql.js',
        'dist/generated/graphql.d.ts',
      ]),
    );
    expect(
      packed.files.filter((file) => !file.startsWith('dist/') && !/^(package\.json|README\.md|LICENSE)$/.test(file)),
    ).toEqual([]);
    // Built JavaScript imports JavaScript: no `.ts` specifier survives the build.
    for (const file of packed.files.filter((f) => f.endsWith('.js'))) {
      const text = readFileSync(join(project, 'node_modules', 'graphql-auth-client', file), 'utf8');
      expect(text).not.toMatch(/from\s+['"][^'"]+\.ts['"]/);
    }
  });

  it('installs without any server dependency, and the server does not depend on the client peers', () => {
    const installed = installedPackages(project);
    expect(installed.has('graphql-auth-client')).toBe(true);
    expect(installed.has('@apollo/client')).toBe(true);
    expect(installed.has('@urql/core')).toBe(true);
    expect(SERVER_ONLY.filter((name) => installed.has(name))).toEqual([]);
    expect([...installed].filter((name) => name.startsWith('@mikro-orm/') || name.startsWith('@pothos/'))).toEqual([]);

    const server = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    const serverDeps = { ...server.dependencies, ...server.devDependencies, ...server.peerDependencies };
    expect(Object.keys(serverDeps).filter((name) => ['@apollo/client', '@urql/core', 'react'].includes(name))).toEqual(
      [],
    );
    const client = JSON.parse(
      readFileSync(join(project, 'node_modules', 'graphql-auth-client', 'package.json'), 'utf8'),
    );
    expect(Object.keys(client.dependencies).sort()).toEqual(['@graphql-typed-document-node/core', 'graphql-ws']);
    for (const peer of ['@apollo/client', '@urql/core', 'react'])
      expect(client.peerDependenciesMeta[peer]).toEqual({ optional: true });
  });

  it('type-checks a file that uses every export under tsc --strict', () => {
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'ESNext',
          moduleResolution: 'Bundler',
          lib: ['ES2022', 'DOM', 'DOM.Iterable'],
          types: [],
          strict: true,
          noEmit: true,
          verbatimModuleSyntax: true,
        },
        include: ['src'],
      }),
    );
    // Under NodeNext resolution too (a Node app, or a library built with tsc). skipLibCheck there only because
    // @apollo/client's own dependency @wry/caches ships declarations that NodeNext rejects (TS2835); the Bundler
    // run above checks every declaration file, this package's included.
    writeFileSync(
      join(project, 'tsconfig.node.json'),
      JSON.stringify({
        extends: './tsconfig.json',
        compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', skipLibCheck: true },
      }),
    );
    for (const config of ['tsconfig.json', 'tsconfig.node.json'])
      expect(typeCheck(config)).toEqual({ ok: true, output: '' });
    // Two whole-program checks of Apollo Client's and urql's declarations: far beyond the default timeout.
  }, 180_000);

  it('loads every entry point in plain Node', () => {
    const script = `
      const main = await import('graphql-auth-client');
      const apollo = await import('graphql-auth-client/apollo');
      const urql = await import('graphql-auth-client/urql');
      const operations = await import('graphql-auth-client/operations');
      const auth = main.createAuthClient({ url: 'http://127.0.0.1:9/graphql', tokenDelivery: 'COOKIE' });
      console.log(JSON.stringify({
        main: Object.keys(main).sort(),
        link: typeof apollo.createAuthLink(auth).request,
        exchange: typeof urql.authExchange(auth),
        me: operations.MeDocument.definitions[0].name.value,
        delivery: auth.tokenDelivery,
      }));
    `;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: project,
      encoding: 'utf8',
    });
    expect(JSON.parse(output)).toEqual({
      main: [
        'AuthClientError',
        'CSRF_HEADER',
        'MfaRequiredError',
        'UNAUTHENTICATED_REASONS',
        'createAuthClient',
        'memoryStorage',
        'operations',
        'unauthenticatedReason',
        'webStorage',
      ],
      link: 'function',
      exchange: 'function',
      me: 'Me',
      delivery: 'COOKIE',
    });
  });
});

describe.skipIf(!serviceAvailable('chromium'))(
  'bundled by Vite, in Chromium, on another origin, in cookie mode',
  () => {
    let t: TestApp;
    let pageServer: Server;
    let browser: Browser;
    let page: Page;
    let api: string;
    let pageUrl: string;
    /** Every value the refresh cookie has had, read from the browser's cookie jar (the page cannot). */
    const refreshTokens = new Set<string>();
    /** Every response body and WebSocket frame the browser received, whether or not the page could read it. */
    const received: string[] = [];

    beforeAll(async () => {
      const apiPort = await freePort();
      let pagePort = await freePort();
      while (pagePort === apiPort) pagePort = await freePort();
      t = await startTestApp({ env: { PORT: String(apiPort), PUBLIC_URL: `http://localhost:${apiPort}` } });
      api = `http://localhost:${apiPort}/graphql`;
      pageUrl = `http://localhost:${pagePort}/graphql/?api=${encodeURIComponent(api)}`;

      writeFileSync(
        join(project, 'index.html'),
        '<!doctype html><html><head><meta charset="utf-8"><title>app</title></head><body><script type="module" src="./src/main.ts"></script></body></html>',
      );
      writeFileSync(
        join(project, 'vite.config.mjs'),
        `export default { root: ${JSON.stringify(project)}, base: './', logLevel: 'warn', build: { outDir: 'dist', emptyOutDir: true, minify: false } };`,
      );
      execFileSync(join(ROOT, 'node_modules', '.bin', 'vite'), ['build', '--config', 'vite.config.mjs'], {
        cwd: project,
        encoding: 'utf8',
        stdio: 'pipe',
      });
      pageServer = await serveStatic(join(project, 'dist'), pagePort);

      browser = await launchChromium([`http://localhost:${apiPort}/`, `http://localhost:${pagePort}/`]);
      await browser.context.addInitScript(RECORD_FETCH);
      page = browser.context.pages()[0] ?? (await browser.context.newPage());
      page.on('response', async (response) => {
        received.push(await response.text().catch(() => ''));
      });
      page.on('websocket', (socket) => socket.on('framereceived', (frame) => received.push(String(frame.payload))));
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      await new Promise((done) => (pageServer ? pageServer.close(done) : done(undefined)));
      await t?.close();
    });

    const call = <T>(expression: string): Promise<T> => page.evaluate(expression) as Promise<T>;

    /** The refresh cookie in the browser's jar (HttpOnly: only the browser, not the page, can see it). */
    async function refreshCookie() {
      const cookies = await browser.context.cookies(api);
      const cookie = cookies.find((c) => c.name === COOKIE);
      if (cookie) refreshTokens.add(cookie.value);
      return cookie;
    }

    /** The fetches of earlier page loads (a reload starts the page's record afresh). */
    const history: Exchange[] = [];

    async function exchanges(): Promise<Exchange[]> {
      return call<Exchange[]>('window.__exchanges');
    }

    async function load() {
      if (page.url().startsWith('http')) history.push(...(await exchanges()));
      await page.goto(pageUrl);
      await page.waitForFunction('typeof window.app === "object"');
    }

    it('runs an anonymous urql query (a GET, which CSRF prevention refuses without the header)', async () => {
      await load();
      expect(await call('app.anonymousMe()')).toEqual({ data: { me: null }, error: null });
      const [query] = await exchanges();
      expect(query?.method).toBe('GET');
      expect(query?.url.startsWith(api)).toBe(true);
    });

    it('signs in with cookie mode: an HttpOnly SameSite=Strict cookie on /graphql, no refresh token in the page', async () => {
      const user = await registerUser(t.gql);
      const signedIn = await call<any>(`app.login(${JSON.stringify(user.user.email)}, ${JSON.stringify(PASSWORD)})`);
      expect(signedIn).toMatchObject({ refreshToken: null, tokens: { userId: user.user.id, refreshToken: null } });
      const cookie = await refreshCookie();
      expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/graphql', secure: false });
      expect(cookie?.value.length).toBeGreaterThan(20);
      const login = (await exchanges()).find((e) => e.body.includes('mutation Login'));
      expect(JSON.parse(login?.body ?? '{}').variables.input.tokenDelivery).toBe('COOKIE');

      expect(await call('app.meApollo()')).toBe(user.user.email);
      expect(await call('app.meUrql()')).toBe(user.user.email);
    });

    it('shares one refresh among concurrent refresh() calls, rotating the cookie', async () => {
      const before = (await exchanges()).length;
      const first = (await refreshCookie())?.value;
      expect(await call('app.refreshTogether(5)')).toBe(1);
      const refreshes = (await exchanges()).slice(before).filter((e) => e.body.includes('mutation Refresh'));
      expect(refreshes).toHaveLength(1);
      // No refresh token travels in the request either: the server reads the cookie.
      expect(JSON.parse(refreshes[0]?.body ?? '{}').variables).toEqual({});
      const rotated = (await refreshCookie())?.value;
      expect(rotated).toBeDefined();
      expect(rotated).not.toBe(first);
    });

    it('after a reload, restore() gets a new access token from the cookie', async () => {
      const sessionId = (await call<any>('app.tokens()')).sessionId;
      await load();
      expect(await call('app.tokens()')).toBeNull();
      expect(await call('app.restore()')).toMatchObject({ sessionId, refreshToken: null });
      expect(await refreshCookie()).toBeDefined();
      expect(await call('app.meUrql()')).toMatch(/@example\.com$/);
    });

    it('logs out: the server clears the cookie; after a reload there is nothing to restore', async () => {
      expect(await call('app.logout()')).toBeNull();
      expect(await refreshCookie()).toBeUndefined();
      await load();
      expect(await call('app.restore()')).toBeNull();
    });

    it('signs out when its session is revoked elsewhere (sessionRevoked)', async () => {
      const user = await registerUser(t.gql);
      const signedIn = await call<any>(`app.login(${JSON.stringify(user.user.email)}, ${JSON.stringify(PASSWORD)})`);
      await refreshCookie();
      const other = (await loginUser(t.gql, user.user.email, PASSWORD)).data?.login as Payload;
      // The revocation watch subscribes over WebSocket once signed in; revoke only when it is listening.
      await eventually(async () => (await scrapeMetrics(t.url)).value('graphql_ws_subscriptions_open') === 1);
      const revoked = await t.gql(
        'mutation($id: ID!) { revokeSession(id: $id) }',
        { id: signedIn.sessionId },
        { token: other.accessToken },
      );
      expect(revoked.data).toEqual({ revokeSession: true });
      await eventually(async () => (await call<unknown[]>('app.signOuts()')).length > 0);
      expect(await call('app.signOuts()')).toEqual([{ reason: 'REVOKED_BY_USER', sessionId: signedIn.sessionId }]);
      expect(await call('app.tokens()')).toBeNull();
      await load();
      expect(await call('app.restore()')).toBeNull();
    });

    it('never lets a refresh token reach document.cookie, storage, or any body the browser received', async () => {
      expect(refreshTokens.size).toBeGreaterThanOrEqual(4);
      const bodies = [...history, ...(await exchanges())].flatMap((e) => [e.body, e.response]);
      expect(bodies.length).toBeGreaterThan(10);
      const visible = [await call<string>('app.cookies()'), ...(await call<string[]>('app.storage()')), ...bodies];
      for (const token of refreshTokens) {
        expect(visible.filter((text) => text.includes(token))).toEqual([]);
        expect(received.filter((text) => text.includes(token))).toEqual([]);
      }
      // The server never wrote a refresh token field with a value either.
      expect(received.filter((text) => /"refreshToken":"/.test(text))).toEqual([]);
    });
  },
);
