// The client package as an app gets it: `npm pack` of packages/client installed alone into a fresh project with
// @apollo/client and @urql/core from the registry; no server dependency comes along; a file using every export
// type-checks under strict; each entry point loads in plain Node; and, bundled by Vite, it runs in Chromium from a
// page on another origin of the same site in cookie mode, the refresh token never reaching the page; and its passkey
// helpers there, against a CDP virtual authenticator, on SQLite and MariaDB.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import type { CDPSession, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { type Dialect, dialects, startTestApp, type TestApp } from './support/app.ts';
import { type Browser, launchChromium } from './support/chromium.ts';
import { loginUser, type Payload, registerUser, revokeSession } from './support/graphql.ts';
import { scrapeMetrics } from './support/metrics.ts';
import { installedPackages, installProject, type PackedPackage, packWorkspace } from './support/packages.ts';
import { addVirtualAuthenticator } from './support/passkey-browser.ts';
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
  type MfaMethod,
  MfaRequiredError,
  memoryStorage,
  operations,
  PASSKEY_ERROR_CODES,
  type PasskeyCeremonyOptions,
  PasskeyError,
  type PasskeyErrorCode,
  type PasskeyFragment,
  type PasskeyRegistrationInput,
  type PasskeySignInInput,
  type RegisterInput,
  type SignedInFragment,
  type SignedOutEvent,
  type SignInInput,
  type TokenDelivery,
  type TokenStorage,
  UNAUTHENTICATED_REASONS,
  type UnauthenticatedReason,
  unauthenticatedReason,
  type VerifyMfaInput,
  webStorage,
} from 'graphql-auth-client';
import { createAuthLink } from 'graphql-auth-client/apollo';
import {
  MeDocument,
  type MeQuery,
  PasskeysDocument,
  RemovePasskeyDocument,
  RenamePasskeyDocument,
} from 'graphql-auth-client/operations';
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

// Passkeys, in both token deliveries: the cookie-mode client above and a bearer-mode one.
const clients: Record<TokenDelivery, AuthClient> = { COOKIE: auth, BODY: createAuthClient({ url: api }) };
const passkeyCodes: readonly PasskeyErrorCode[] = PASSKEY_ERROR_CODES;
const pendingMfa: Partial<Record<TokenDelivery, MfaRequiredError>> = {};
/** Every MfaRequiredError of each mode, oldest first (for verifyCrossed). */
const keptMfa: Record<TokenDelivery, MfaRequiredError[]> = { COOKIE: [], BODY: [] };
const aborted = (yes: boolean): PasskeyCeremonyOptions => (yes ? { signal: AbortSignal.abort() } : {});

function passkeyFailure(error: unknown) {
  if (error instanceof PasskeyError) {
    const code: PasskeyErrorCode = error.code;
    const cause = error.cause instanceof Error ? error.cause.name : null;
    return { failed: 'PasskeyError', code, cause, authClientError: error instanceof AuthClientError };
  }
  if (error instanceof AuthClientError) return { failed: 'AuthClientError', code: error.code, reason: error.reason ?? null, message: error.message };
  return { failed: 'other', code: String(error) };
}

function signedInAs(mode: TokenDelivery, payload: SignedInFragment) {
  return { userId: payload.user.id, sessionId: payload.session.id, refreshToken: payload.refreshToken, tokens: summary(clients[mode].tokens) };
}

const passkeys = {
  async register(mode: TokenDelivery, name?: string, aborted = false) {
    const input: PasskeyRegistrationInput = { ...(name === undefined ? {} : { name }), ...(aborted ? { signal: AbortSignal.abort() } : {}) };
    try {
      const passkey: PasskeyFragment = await clients[mode].registerPasskey(input);
      return passkey;
    } catch (error) {
      return passkeyFailure(error);
    }
  },
  async login(mode: TokenDelivery, email?: string, abort = false) {
    const input: PasskeySignInInput = { ...(email === undefined ? {} : { email }), ...aborted(abort) };
    try {
      return signedInAs(mode, await clients[mode].loginWithPasskey(input));
    } catch (error) {
      return passkeyFailure(error);
    }
  },
  /** A password sign-in that should answer MFA_REQUIRED: the error is kept for verify(). */
  async password(mode: TokenDelivery, email: string, password: string) {
    try {
      return signedInAs(mode, await clients[mode].login({ email, password }));
    } catch (error) {
      if (!(error instanceof MfaRequiredError)) return passkeyFailure(error);
      pendingMfa[mode] = error;
      keptMfa[mode].push(error);
      const methods: readonly MfaMethod[] = error.methods;
      return { code: error.code, methods, passkeyOptions: error.passkeyOptions !== undefined };
    }
  },
  async verify(mode: TokenDelivery, withoutOptions = false, abort = false) {
    const pending = pendingMfa[mode];
    if (!pending) return null;
    const options: PasskeyCeremonyOptions = aborted(abort);
    const challenge = withoutOptions ? { mfaToken: pending.mfaToken, passkeyOptions: undefined } : pending;
    try {
      return signedInAs(mode, await clients[mode].verifyMfaWithPasskey(challenge, options));
    } catch (error) {
      return passkeyFailure(error);
    }
  },
  /**
   * verifyMfaWithPasskey with the mfaToken of the kept step \`tokenOf\` and the passkeyOptions of step \`optionsOf\`,
   * or (\`'forged'\`) that step's own options with a challenge of the page's making, as a forged MfaRequiredError would.
   */
  async verifyCrossed(mode: TokenDelivery, tokenOf: number, optionsOf: number | 'forged') {
    const steps = keptMfa[mode];
    const mfaToken = steps[tokenOf]?.mfaToken ?? '';
    const own = steps[tokenOf]?.passkeyOptions;
    const challenge = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))
      .replaceAll('+', '-').replaceAll('/', '_').replaceAll('=', '');
    const passkeyOptions = optionsOf === 'forged' ? { ...own, challenge } : steps[optionsOf]?.passkeyOptions;
    try {
      return signedInAs(mode, await clients[mode].verifyMfaWithPasskey({ mfaToken, passkeyOptions }));
    } catch (error) {
      return passkeyFailure(error);
    }
  },
  /** How many MfaRequiredErrors of this mode are kept. */
  kept: (mode: TokenDelivery) => keptMfa[mode].length,
  /** verifyMfa again with the kept (by then spent) mfaToken. */
  async verifyAgain(mode: TokenDelivery) {
    const pending = pendingMfa[mode];
    if (!pending) return null;
    const input: SignInInput<VerifyMfaInput> = { mfaToken: pending.mfaToken, code: '000000' };
    try {
      return signedInAs(mode, await clients[mode].verifyMfa(input));
    } catch (error) {
      return passkeyFailure(error);
    }
  },
  async list(mode: TokenDelivery) {
    return (await clients[mode].request(PasskeysDocument, {})).me?.passkeys ?? null;
  },
  async rename(mode: TokenDelivery, id: string, name: string) {
    return (await clients[mode].request(RenamePasskeyDocument, { id, name })).renamePasskey;
  },
  async remove(mode: TokenDelivery, id: string) {
    return (await clients[mode].request(RemovePasskeyDocument, { id })).removePasskey.passkeys;
  },
  async me(mode: TokenDelivery) {
    try {
      return (await clients[mode].request(MeDocument, {})).me?.email ?? null;
    } catch (error) {
      return passkeyFailure(error);
    }
  },
  async logout(mode: TokenDelivery) {
    await clients[mode].logout();
    return summary(clients[mode].tokens);
  },
  tokens: (mode: TokenDelivery) => summary(clients[mode].tokens),
};

const app = {
  csrfHeader: CSRF_HEADER,
  checks: storages.length + reasons.length + Object.keys(sample).length + passkeyCodes.length,
  passkeys,
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
        'dist/webauthn.js',
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
        'PASSKEY_ERROR_CODES',
        'PasskeyError',
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

  it('rejects every passkey helper in Node (no WebAuthn) with PASSKEY_UNSUPPORTED, before any request', () => {
    const script = `
      const { AuthClientError, createAuthClient, PasskeyError } = await import('graphql-auth-client');
      let requests = 0;
      const fetch = async () => {
        requests++;
        throw new Error('no request was expected');
      };
      const auth = createAuthClient({ url: 'http://127.0.0.1:9/graphql', fetch, webSocketImpl: null });
      const calls = [
        () => auth.registerPasskey({ name: 'laptop' }),
        () => auth.loginWithPasskey(),
        () => auth.loginWithPasskey({ email: 'someone@example.com' }),
        () => auth.verifyMfaWithPasskey({ mfaToken: 'x', passkeyOptions: { challenge: 'AAAA' } }),
      ];
      const outcomes = [];
      for (const call of calls) {
        const error = await call().then(() => null, (e) => e);
        outcomes.push({
          passkeyError: error instanceof PasskeyError,
          authClientError: error instanceof AuthClientError,
          code: error?.code,
        });
      }
      console.log(JSON.stringify({ outcomes, requests }));
    `;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: project,
      encoding: 'utf8',
    });
    const unsupported = { passkeyError: true, authClientError: true, code: 'PASSKEY_UNSUPPORTED' };
    expect(JSON.parse(output)).toEqual({ outcomes: Array(4).fill(unsupported), requests: 0 });
  });
});

/** Vite's build of the app (index.html and src/main.ts), once for the file: both Chromium blocks serve it. */
let bundled: string | undefined;
function bundleApp(): string {
  if (bundled) return bundled;
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
  bundled = join(project, 'dist');
  return bundled;
}

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

      pageServer = await serveStatic(bundleApp(), pagePort);

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
      const revoked = await revokeSession(t.gql, signedIn.sessionId, other.accessToken);
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

describe.skipIf(!serviceAvailable('chromium'))(
  'passkeys through the bundled package, in Chromium with a virtual authenticator',
  () => {
    // One service per dialect, one page server, one Chromium (a virtual authenticator: ctap2, internal, resident
    // keys, user verification) for all of them; the page names its service in ?api=.
    const services = new Map<Dialect, { t: TestApp; api: string }>();
    let pageServer: Server;
    let pageOrigin: string;
    let browser: Browser;
    let page: Page;
    let cdp: CDPSession;
    let authenticatorId: string;

    beforeAll(async () => {
      const pagePort = await freePort();
      pageOrigin = `http://localhost:${pagePort}`;
      for (const dialect of dialects()) {
        let apiPort = await freePort();
        while (apiPort === pagePort) apiPort = await freePort();
        const t = await startTestApp({
          dialect,
          // The relying party is localhost (from PUBLIC_URL); the page's origin is the one WebAuthn origin.
          env: { PORT: String(apiPort), PUBLIC_URL: `http://localhost:${apiPort}`, WEBAUTHN_ORIGINS: pageOrigin },
        });
        services.set(dialect, { t, api: `http://localhost:${apiPort}/graphql` });
      }
      pageServer = await serveStatic(bundleApp(), pagePort);
      browser = await launchChromium([`${pageOrigin}/`, ...[...services.values()].map(({ api }) => api)]);
      await browser.context.addInitScript(RECORD_FETCH);
      page = browser.context.pages()[0] ?? (await browser.context.newPage());
      cdp = await browser.context.newCDPSession(page);
      authenticatorId = await addVirtualAuthenticator(cdp);
    }, 180_000);

    afterAll(async () => {
      await browser?.close();
      await new Promise((done) => (pageServer ? pageServer.close(done) : done(undefined)));
      for (const { t } of services.values()) await t.close();
    });

    const call = <T>(expression: string): Promise<T> => page.evaluate(expression) as Promise<T>;
    const exchanges = () => call<Exchange[]>('window.__exchanges');
    /** The GraphQL operations the page sent since `from` (its exchange count then), by operation name. */
    const sentSince = async (from: number) =>
      (await exchanges())
        .slice(from)
        .map((e) => /^(?:mutation|query) (\w+)/.exec(JSON.parse(e.body || '{}').query ?? '')?.[1] ?? e.method);

    async function open(dialect: Dialect) {
      const service = services.get(dialect);
      if (!service) throw new Error(`no service for ${dialect}`);
      await page.goto(`${pageOrigin}/graphql/?api=${encodeURIComponent(service.api)}`);
      await page.waitForFunction('typeof window.app === "object"');
      // One credential at a time in the authenticator: a discoverable sign-in then has exactly one to pick.
      await cdp.send('WebAuthn.clearCredentials', { authenticatorId });
      return service.t;
    }

    const sessionsOf = (t: TestApp, userId: string) => (t.app.orm.em.fork() as Em).count(Session, { user: userId });
    const refreshCookie = async (api: string) =>
      (await browser.context.cookies(api)).find((cookie) => cookie.name === COOKIE);
    const arg = (value: unknown) => JSON.stringify(value);
    /** Cookie mode: the refresh cookie is set, and its value is nowhere the page can read it. */
    async function expectRefreshTokenOutOfPage(api: string) {
      const cookie = await refreshCookie(api);
      expect(cookie).toMatchObject({ httpOnly: true });
      const value = cookie?.value ?? '';
      expect(value.length).toBeGreaterThan(20);
      const bodies = (await exchanges()).flatMap((e) => [e.body, e.response]);
      const visible = [await call<string>('app.cookies()'), ...(await call<string[]>('app.storage()')), ...bodies];
      expect(visible.filter((text) => text.includes(value))).toEqual([]);
    }

    describe.each(dialects())('%s', (dialect) => {
      it('registers a passkey (signed in by password), then signs in with it without and with an email, in cookie and bearer mode', async () => {
        const t = await open(dialect);
        const api = services.get(dialect)?.api ?? '';
        const user = await registerUser(t.gql);
        const email = user.user.email;
        expect(await call(`app.passkeys.password('COOKIE', ${arg(email)}, ${arg(PASSWORD)})`)).toMatchObject({
          userId: user.user.id,
        });

        const passkey = await call<any>(`app.passkeys.register('COOKIE', 'Laptop')`);
        expect(passkey).toEqual({
          id: expect.any(String),
          name: 'Laptop',
          createdAt: expect.any(String),
          lastUsedAt: null,
        });
        const [credential, ...others] = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
        expect(others).toEqual([]);
        expect(credential).toMatchObject({ isResidentCredential: true, rpId: 'localhost' });
        expect(await call('app.passkeys.logout("COOKIE")')).toBeNull();
        expect(await refreshCookie(api)).toBeUndefined();

        // Cookie mode, no email: the authenticator offers its discoverable credential.
        let from = (await exchanges()).length;
        const discovered = await call<any>(`app.passkeys.login('COOKIE')`);
        expect(discovered).toMatchObject({ userId: user.user.id, refreshToken: null, tokens: { refreshToken: null } });
        expect(await sentSince(from)).toEqual(['StartPasskeyLogin', 'LoginWithPasskey']);
        const [start, login] = (await exchanges()).slice(from).map((e) => JSON.parse(e.body).variables);
        expect(start).toEqual({});
        expect(login.input).toMatchObject({ challengeId: expect.any(String), tokenDelivery: 'COOKIE' });
        expect(login.input.response).toMatchObject({
          id: Buffer.from(credential?.credentialId ?? '', 'base64').toString('base64url'),
          type: 'public-key',
        });
        await expectRefreshTokenOutOfPage(api);
        expect(await call(`app.passkeys.me('COOKIE')`)).toBe(email);
        await call('app.passkeys.logout("COOKIE")');

        // Cookie mode, with the email.
        from = (await exchanges()).length;
        expect(await call(`app.passkeys.login('COOKIE', ${arg(email)})`)).toMatchObject({
          userId: user.user.id,
          refreshToken: null,
        });
        expect((await exchanges()).slice(from).map((e) => JSON.parse(e.body).variables)[0]).toEqual({ email });
        await expectRefreshTokenOutOfPage(api);
        expect(await call(`app.passkeys.me('COOKIE')`)).toBe(email);
        await call('app.passkeys.logout("COOKIE")');

        // Bearer mode, both ways: the refresh token is the client's.
        for (const input of ['', `, ${arg(email)}`]) {
          const bearer = await call<any>(`app.passkeys.login('BODY'${input})`);
          expect(bearer).toMatchObject({ userId: user.user.id, refreshToken: expect.any(String) });
          expect(bearer.tokens).toEqual({
            sessionId: bearer.sessionId,
            userId: user.user.id,
            refreshToken: bearer.refreshToken,
          });
          expect(await call(`app.passkeys.me('BODY')`)).toBe(email);
          expect(await call('app.passkeys.logout("BODY")')).toBeNull();
        }

        // listPasskeys / renamePasskey / removePasskey as typed operations through request().
        await call(`app.passkeys.login('BODY')`);
        const listed = await call<any[]>(`app.passkeys.list('BODY')`);
        expect(listed).toEqual([{ ...passkey, lastUsedAt: expect.any(String) }]);
        expect(await call(`app.passkeys.rename('BODY', ${arg(passkey.id)}, 'Work laptop')`)).toMatchObject({
          id: passkey.id,
          name: 'Work laptop',
        });
        // Registering the same authenticator again: it holds a passkey of this account (excludeCredentials).
        from = (await exchanges()).length;
        expect(await call(`app.passkeys.register('BODY', 'Again')`)).toEqual({
          failed: 'PasskeyError',
          code: 'PASSKEY_ALREADY_REGISTERED',
          cause: 'InvalidStateError',
          authClientError: true,
        });
        expect(await sentSince(from)).toEqual(['StartPasskeyRegistration']);
        expect(await call(`app.passkeys.remove('BODY', ${arg(passkey.id)})`)).toEqual([]);
        await call('app.passkeys.logout("BODY")');
      });

      it('password sign-in → MfaRequiredError → verifyMfaWithPasskey signs in (bearer and cookie mode); the spent mfaToken says so', async () => {
        const t = await open(dialect);
        const api = services.get(dialect)?.api ?? '';
        const user = await registerUser(t.gql);
        const email = user.user.email;
        await call(`app.passkeys.password('BODY', ${arg(email)}, ${arg(PASSWORD)})`);
        expect(await call(`app.passkeys.register('BODY')`)).toMatchObject({ name: null });
        await call('app.passkeys.logout("BODY")');

        for (const mode of ['BODY', 'COOKIE'] as const) {
          expect(await call(`app.passkeys.password('${mode}', ${arg(email)}, ${arg(PASSWORD)})`)).toEqual({
            code: 'MFA_REQUIRED',
            methods: ['PASSKEY'],
            passkeyOptions: true,
          });
          expect(await call(`app.passkeys.tokens('${mode}')`)).toBeNull();
          const from = (await exchanges()).length;
          const verified = await call<any>(`app.passkeys.verify('${mode}')`);
          expect(verified).toMatchObject({
            userId: user.user.id,
            refreshToken: mode === 'BODY' ? expect.any(String) : null,
            tokens: { sessionId: verified.sessionId },
          });
          expect(await sentSince(from)).toEqual(['VerifyMfa']);
          if (mode === 'COOKIE') await expectRefreshTokenOutOfPage(api);
          const input = JSON.parse((await exchanges())[from]?.body ?? '{}').variables.input;
          expect(Object.keys(input).sort()).toEqual(
            mode === 'COOKIE' ? ['mfaToken', 'passkeyResponse', 'tokenDelivery'] : ['mfaToken', 'passkeyResponse'],
          );
          expect(await call(`app.passkeys.me('${mode}')`)).toBe(email);
          expect(await call(`app.passkeys.verifyAgain('${mode}')`)).toEqual({
            failed: 'AuthClientError',
            code: 'UNAUTHENTICATED',
            reason: 'INVALID_TOKEN',
            message: 'The MFA token is spent, expired or unknown: sign in again',
          });
          expect(await call(`app.passkeys.logout('${mode}')`)).toBeNull();
        }
      });

      it('a cancelled ceremony rejects with PASSKEY_CANCELLED, sends no answer and opens no session', async () => {
        const t = await open(dialect);
        const user = await registerUser(t.gql);
        const email = user.user.email;
        await call(`app.passkeys.password('BODY', ${arg(email)}, ${arg(PASSWORD)})`);
        await call(`app.passkeys.register('BODY')`);
        // Signed in, registering another passkey with an aborted signal: nothing is sent, not even the start.
        let from = (await exchanges()).length;
        const cancelled = { failed: 'PasskeyError', code: 'PASSKEY_CANCELLED', authClientError: true };
        expect(await call(`app.passkeys.register('BODY', 'Other', true)`)).toEqual({
          ...cancelled,
          cause: 'AbortError',
        });
        expect(await sentSince(from)).toEqual([]);
        await call('app.passkeys.logout("BODY")');
        // Nor a sign-in's start (each counts against RATE_LIMIT_PASSKEY_START_IP) or its answer.
        from = (await exchanges()).length;
        expect(await call(`app.passkeys.login('BODY', undefined, true)`)).toEqual({
          ...cancelled,
          cause: 'AbortError',
        });
        expect(await call(`app.passkeys.login('BODY', ${arg(email)}, true)`)).toEqual({
          ...cancelled,
          cause: 'AbortError',
        });
        expect(await sentSince(from)).toEqual([]);
        const sessions = await sessionsOf(t, user.user.id);

        // The user fails verification (the passkey options require it): NotAllowedError in the browser.
        await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false });
        try {
          for (const mode of ['BODY', 'COOKIE'] as const) {
            from = (await exchanges()).length;
            expect(await call(`app.passkeys.login('${mode}')`)).toEqual({ ...cancelled, cause: 'NotAllowedError' });
            expect(await call(`app.passkeys.login('${mode}', ${arg(email)})`)).toEqual({
              ...cancelled,
              cause: 'NotAllowedError',
            });
            expect(await call(`app.passkeys.password('${mode}', ${arg(email)}, ${arg(PASSWORD)})`)).toMatchObject({
              code: 'MFA_REQUIRED',
            });
            expect(await call(`app.passkeys.verify('${mode}')`)).toEqual({ ...cancelled, cause: 'NotAllowedError' });
            expect(await call(`app.passkeys.verify('${mode}', false, true)`)).toEqual({
              ...cancelled,
              cause: 'AbortError',
            });
            expect(await call(`app.passkeys.verify('${mode}', true)`)).toEqual({
              failed: 'PasskeyError',
              code: 'PASSKEY_NOT_OFFERED',
              cause: null,
              authClientError: true,
            });
            expect(await sentSince(from)).toEqual(['StartPasskeyLogin', 'StartPasskeyLogin', 'Login']);
            expect(await call(`app.passkeys.tokens('${mode}')`)).toBeNull();
          }
          expect(await sessionsOf(t, user.user.id)).toBe(sessions);
        } finally {
          await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: true });
        }
        // Nothing was spent or counted: the same mfaToken still finishes with the passkey.
        expect(await call(`app.passkeys.verify('COOKIE')`)).toMatchObject({ userId: user.user.id });
        expect(await sessionsOf(t, user.user.id)).toBe(sessions + 1);
        await call('app.passkeys.logout("COOKIE")');
      });

      it('verifyMfaWithPasskey with passkeyOptions not of its own step (another step’s, or forged) is INVALID_CODE and opens no session', async () => {
        const t = await open(dialect);
        const user = await registerUser(t.gql);
        const email = user.user.email;
        await call(`app.passkeys.password('BODY', ${arg(email)}, ${arg(PASSWORD)})`);
        await call(`app.passkeys.register('BODY')`);
        await call('app.passkeys.logout("BODY")');
        const sessions = await sessionsOf(t, user.user.id);
        const steps = await call<number>('app.passkeys.kept("BODY")');
        for (let i = 0; i < 3; i++) {
          expect(await call(`app.passkeys.password('BODY', ${arg(email)}, ${arg(PASSWORD)})`)).toMatchObject({
            code: 'MFA_REQUIRED',
          });
        }
        const [first, second, third] = [steps, steps + 1, steps + 2];
        // The user's own passkey signs, on the trusted origin, a challenge that is not its step's: refused.
        const from = (await exchanges()).length;
        const refused = { failed: 'AuthClientError', code: 'INVALID_CODE', reason: null, message: expect.any(String) };
        expect(await call(`app.passkeys.verifyCrossed('BODY', ${second}, ${first})`)).toEqual(refused);
        expect(await call(`app.passkeys.verifyCrossed('BODY', ${third}, 'forged')`)).toEqual(refused);
        expect(await sentSince(from)).toEqual(['VerifyMfa', 'VerifyMfa']);
        expect(await call(`app.passkeys.tokens('BODY')`)).toBeNull();
        expect(await sessionsOf(t, user.user.id)).toBe(sessions);
        // The step whose options were lent still finishes with them: only the crossed answers were refused.
        expect(await call(`app.passkeys.verifyCrossed('BODY', ${first}, ${first})`)).toMatchObject({
          userId: user.user.id,
        });
        expect(await sessionsOf(t, user.user.id)).toBe(sessions + 1);
        await call('app.passkeys.logout("BODY")');
      });
    });
  },
);
