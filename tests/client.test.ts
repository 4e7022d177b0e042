// The client SDK (packages/client, from its sources) against a running service, through the real @apollo/client
// and @urql/core: sign-in, refresh before and after expiry (2 s access tokens), one shared refresh for concurrent
// calls, sign-out on revocation, CSRF prevention passed by anonymous GET queries, and cookie mode (with a cookie
// jar standing in for the browser; tests/client-package.test.ts runs it in Chromium).
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from '@apollo/client';
import { cacheExchange, fetchExchange, Client as UrqlClient } from '@urql/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthLink } from '../packages/client/src/apollo.ts';
import {
  type AuthClient,
  AuthClientError,
  createAuthClient,
  type SignedOutEvent,
  UNAUTHENTICATED_REASONS,
  webStorage,
} from '../packages/client/src/index.ts';
import { MeDocument } from '../packages/client/src/operations.ts';
import { authExchange } from '../packages/client/src/urql.ts';
import { AuditEvent } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { UNAUTHENTICATED_REASONS as SERVER_REASONS } from '../src/errors.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { cookieJar } from './support/cookie-jar.ts';
import { errorCode, loginUser, type Payload, registerUser, revokeSession } from './support/graphql.ts';
import { scrapeMetrics } from './support/metrics.ts';
import { eventually } from './support/subscriptions.ts';

const TTL_MS = 2000;
const PASSWORD = 'correct horse battery';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function apolloFor(t: TestApp, auth: AuthClient) {
  return new ApolloClient({
    link: ApolloLink.from([createAuthLink(auth), new HttpLink({ uri: `${t.url}/graphql`, fetch })]),
    cache: new InMemoryCache(),
    defaultOptions: { query: { fetchPolicy: 'network-only' } },
  });
}

function urqlFor(t: TestApp, auth: AuthClient) {
  return new UrqlClient({
    url: `${t.url}/graphql`,
    exchanges: [authExchange(auth), fetchExchange],
    requestPolicy: 'network-only',
  });
}

/** How many refreshes the server has recorded for a session. */
async function refreshesOf(t: TestApp, sessionId: string): Promise<number> {
  return (t.app.orm.em.fork() as Em).count(AuditEvent, { type: 'TOKEN_REFRESHED', sessionId });
}

/** A Web Storage area over a Map, whose every value the test can inspect. */
function mapStorage(items = new Map<string, string>()) {
  return {
    items,
    storage: {
      getItem: (key: string) => items.get(key) ?? null,
      setItem: (key: string, value: string) => void items.set(key, value),
      removeItem: (key: string) => void items.delete(key),
    } as Storage,
  };
}

function collectSignOuts(auth: AuthClient) {
  const events: SignedOutEvent[] = [];
  auth.on('signedOut', (event) => events.push(event));
  return events;
}

describe('client SDK, with 2 s access tokens', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { ACCESS_TOKEN_TTL: '2s', JWT_CLOCK_TOLERANCE: '0s' } });
  });
  afterAll(() => t?.close());

  async function signedInClient(options: { now?: () => number } = {}) {
    const user = await registerUser(t.gql);
    const auth = createAuthClient({ url: `${t.url}/graphql`, watchRevocation: false, ...options });
    const payload = await auth.login({ email: user.user.email, password: PASSWORD });
    return { user, auth, payload };
  }

  it('logs in, keeps the tokens, and reads me through Apollo Client and urql', async () => {
    const { user, auth, payload } = await signedInClient();
    expect(auth.tokens).toMatchObject({
      accessToken: payload.accessToken,
      refreshToken: payload.refreshToken,
      userId: user.user.id,
      sessionId: payload.session.id,
    });
    const apollo = await apolloFor(t, auth).query({ query: MeDocument });
    expect(apollo.data?.me).toMatchObject({ id: user.user.id, email: user.user.email });
    const urql = await urqlFor(t, auth).query(MeDocument, {}).toPromise();
    expect(urql.error).toBeUndefined();
    expect(urql.data?.me?.email).toBe(user.user.email);
    expect(await refreshesOf(t, payload.session.id)).toBe(0);
  });

  it('refreshes by itself once the access token has expired, for Apollo Client and for urql', async () => {
    const { user, auth, payload } = await signedInClient();
    const apollo = apolloFor(t, auth);
    const urql = urqlFor(t, auth);
    const seen: string[] = [];
    auth.on('tokens', (tokens) => seen.push(tokens.accessToken));

    await sleep(TTL_MS + 200);
    expect((await apollo.query({ query: MeDocument })).data?.me?.id).toBe(user.user.id);
    expect(auth.tokens?.accessToken).not.toBe(payload.accessToken);
    expect(await refreshesOf(t, payload.session.id)).toBe(1);

    await sleep(TTL_MS + 200);
    const result = await urql.query(MeDocument, {}).toPromise();
    expect(result.error).toBeUndefined();
    expect(result.data?.me?.id).toBe(user.user.id);
    expect(await refreshesOf(t, payload.session.id)).toBe(2);
    expect(seen).toHaveLength(2);
    expect(seen.at(-1)).toBe(auth.tokens?.accessToken);
  });

  it('shares one refresh among ten concurrent calls made after expiry', async () => {
    const { user, auth, payload } = await signedInClient();
    const apollo = apolloFor(t, auth);
    const urql = urqlFor(t, auth);
    await sleep(TTL_MS + 200);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => {
        if (i % 3 === 0) return apollo.query({ query: MeDocument }).then((r) => r.data?.me?.id);
        if (i % 3 === 1)
          return urql
            .query(MeDocument, {})
            .toPromise()
            .then((r) => r.data?.me?.id);
        return auth.request(MeDocument).then((r) => r.me?.id);
      }),
    );
    expect(results).toEqual(Array.from({ length: 10 }, () => user.user.id));
    expect(await refreshesOf(t, payload.session.id)).toBe(1);
  });

  it('refreshes and retries once when the server says TOKEN_EXPIRED before the client expected it', async () => {
    // A client whose clock runs a minute slow still believes in an expired token: the server's answer decides.
    const { user, auth, payload } = await signedInClient({ now: () => Date.now() - 60_000 });
    const apollo = apolloFor(t, auth);
    const urql = urqlFor(t, auth);
    await sleep(TTL_MS + 200);
    expect((await apollo.query({ query: MeDocument })).data?.me?.id).toBe(user.user.id);
    expect(await refreshesOf(t, payload.session.id)).toBe(1);
    await sleep(TTL_MS + 200);
    const viaUrql = await urql.query(MeDocument, {}).toPromise();
    expect(viaUrql.data?.me?.id).toBe(user.user.id);
    expect(await refreshesOf(t, payload.session.id)).toBe(2);
    await sleep(TTL_MS + 200);
    const all = await Promise.all(Array.from({ length: 5 }, () => auth.request(MeDocument)));
    expect(all.map((r) => r.me?.id)).toEqual(Array.from({ length: 5 }, () => user.user.id));
    expect(await refreshesOf(t, payload.session.id)).toBe(3);
  });

  it('signs out when the server refuses its token because the session was revoked, and fails the call', async () => {
    const { user, auth, payload } = await signedInClient();
    const signOuts = collectSignOuts(auth);
    const other = (await loginUser(t.gql, user.user.email, PASSWORD)).data?.login as Payload;
    const revoked = await revokeSession(t.gql, payload.session.id, other.accessToken);
    expect(revoked.data).toEqual({ revokeSession: true });
    // The access token itself is refused at once; the client cannot refresh its way out.
    const error = await auth.request(MeDocument).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthClientError);
    expect((error as AuthClientError).reason).toBe('SESSION_REVOKED');
    expect(signOuts).toEqual([{ reason: 'SESSION_REVOKED', sessionId: payload.session.id }]);
    expect(auth.tokens).toBeNull();
  });

  it('logs out: the server revokes the session and the client forgets it', async () => {
    const { auth, payload } = await signedInClient();
    const signOuts = collectSignOuts(auth);
    await auth.logout();
    expect(signOuts).toEqual([{ reason: 'LOGOUT', sessionId: payload.session.id }]);
    expect(auth.tokens).toBeNull();
    expect(await auth.accessToken()).toBeNull();
    expect(errorCode(await t.gql('{ me { id } }', {}, { token: payload.accessToken }))).toBe('UNAUTHENTICATED');
  });

  it('keeps tokens in a storage adapter that another client restores from', async () => {
    const items = new Map<string, string>();
    const storage = webStorage({
      getItem: (key: string) => items.get(key) ?? null,
      setItem: (key: string, value: string) => void items.set(key, value),
      removeItem: (key: string) => void items.delete(key),
    } as Storage);
    const user = await registerUser(t.gql);
    const first = createAuthClient({ url: `${t.url}/graphql`, storage, watchRevocation: false });
    await first.login({ email: user.user.email, password: PASSWORD });
    const second = createAuthClient({ url: `${t.url}/graphql`, storage, watchRevocation: false });
    expect((await second.restore())?.sessionId).toBe(first.tokens?.sessionId);
    expect((await second.request(MeDocument)).me?.email).toBe(user.user.email);
  });
});

describe('client SDK, watching sessionRevoked', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  it('signs out as soon as its own session is revoked elsewhere, through the subscription', async () => {
    const user = await registerUser(t.gql);
    const auth = createAuthClient({ url: `${t.url}/graphql` });
    const signOuts = collectSignOuts(auth);
    const payload = await auth.login({ email: user.user.email, password: PASSWORD });
    await eventually(async () => (await scrapeMetrics(t.url)).value('graphql_ws_subscriptions_open') === 1);

    // Revoking another session of the same user is heard but does not sign this client out.
    const spare = (await loginUser(t.gql, user.user.email, PASSWORD)).data?.login as Payload;
    await revokeSession(t.gql, spare.session.id, user.accessToken);
    await sleep(200);
    expect(signOuts).toEqual([]);

    const revoked = await revokeSession(t.gql, payload.session.id, user.accessToken);
    expect(revoked.data).toEqual({ revokeSession: true });
    await eventually(() => signOuts.length > 0);
    expect(signOuts).toEqual([{ reason: 'REVOKED_BY_USER', sessionId: payload.session.id }]);
    expect(auth.tokens).toBeNull();
    await eventually(async () => (await scrapeMetrics(t.url)).value('graphql_ws_subscriptions_open') === 0);
    await auth.dispose();
  });
});

describe('client SDK, anonymous operations', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  it("speaks the server's reasons vocabulary (its own copy, so that nothing server-side is installed)", () => {
    expect([...UNAUTHENTICATED_REASONS].sort()).toEqual(Object.keys(SERVER_REASONS).sort());
  });

  it('passes CSRF prevention with no session, for urql GET queries and Apollo Client GET queries', async () => {
    const url = `${t.url}/graphql`;
    // The premise: a bare GET query is refused by CSRF prevention.
    const bare = new UrqlClient({ url, exchanges: [fetchExchange], preferGetMethod: 'force' });
    const refused = await bare.query(MeDocument, {}).toPromise();
    expect(refused.error?.message).toMatch(/Required CSRF header/);

    const auth = createAuthClient({ url, watchRevocation: false });
    const urql = new UrqlClient({
      url,
      exchanges: [cacheExchange, authExchange(auth), fetchExchange],
      preferGetMethod: 'force',
      requestPolicy: 'network-only',
    });
    const viaUrql = await urql.query(MeDocument, {}).toPromise();
    expect(viaUrql.error).toBeUndefined();
    expect(viaUrql.data).toEqual({ me: null });

    const methods: string[] = [];
    const recording: typeof fetch = (input, init) => {
      methods.push(init?.method ?? 'GET');
      return fetch(input, init);
    };
    const apollo = new ApolloClient({
      link: ApolloLink.from([
        createAuthLink(auth),
        new HttpLink({ uri: url, fetch: recording, useGETForQueries: true }),
      ]),
      cache: new InMemoryCache(),
    });
    const viaApollo = await apollo.query({ query: MeDocument, fetchPolicy: 'network-only' });
    expect(viaApollo.data).toEqual({ me: null });
    expect(methods).toEqual(['GET']);
  });
});

describe.each(dialects())('client SDK in cookie mode on %s (a cookie jar standing in for the browser)', (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ dialect });
  });
  afterAll(() => t?.close());

  function cookieClient(jar: ReturnType<typeof cookieJar>, storage?: Storage) {
    return createAuthClient({
      url: `${t.url}/graphql`,
      tokenDelivery: 'COOKIE',
      fetch: jar.fetch,
      // Clients sharing one jar are a browser's tabs: they take turns, as in a page.
      tabLock: true,
      watchRevocation: false,
      ...(storage ? { storage: webStorage(storage) } : {}),
    });
  }

  async function signedInTab() {
    const user = await registerUser(t.gql);
    const jar = cookieJar();
    const { items, storage } = mapStorage();
    const auth = cookieClient(jar, storage);
    const payload = await auth.login({ email: user.user.email, password: PASSWORD });
    // Signed in with the cookie, not with a refresh token in the answer.
    expect(jar.get('refresh_token')).toMatch(/.{20,}/);
    expect(payload.refreshToken).toBeNull();
    return { user, jar, items, storage, auth, payload };
  }

  it('keeps no refresh token in memory or storage; a reloaded client restores from the cookie', async () => {
    const { user, jar, items, storage, auth, payload } = await signedInTab();
    expect(payload.refreshToken).toBeNull();
    expect(auth.tokens?.refreshToken).toBeNull();
    const cookie = jar.get('refresh_token');
    expect(cookie).toMatch(/.{20,}/);
    const stored = [...items.values()];
    expect(stored).toHaveLength(1);
    expect(JSON.parse(stored[0] as string)).toMatchObject({ refreshToken: null, sessionId: payload.session.id });
    expect(stored.filter((value) => value.includes(cookie as string))).toEqual([]);

    const reloaded = cookieClient(jar, storage);
    const restored = await reloaded.restore();
    expect(restored).toMatchObject({ sessionId: payload.session.id, userId: user.user.id, refreshToken: null });
    expect(restored?.accessToken).not.toBe(payload.accessToken);
    expect(jar.get('refresh_token')).not.toBe(cookie);
    expect((await reloaded.request(MeDocument)).me?.id).toBe(user.user.id);
    expect(await refreshesOf(t, payload.session.id)).toBe(1);
  });

  it('shares one refresh request among twenty concurrent refresh() calls', async () => {
    const { auth, payload } = await signedInTab();
    const all = await Promise.all(Array.from({ length: 20 }, () => auth.refresh()));
    expect(new Set(all.map((tokens) => tokens.accessToken)).size).toBe(1);
    expect(await refreshesOf(t, payload.session.id)).toBe(1);
  });

  it("five tabs refreshing at once all get a token: the losers take the winner's cookie, none signs out", async () => {
    const { jar, auth, payload } = await signedInTab();
    const tabs = [auth, ...Array.from({ length: 4 }, () => cookieClient(jar))];
    const signOuts = tabs.flatMap((tab) => collectSignOuts(tab));
    const all = await Promise.all(tabs.map((tab) => tab.refresh()));
    expect(all.map((tokens) => tokens.sessionId)).toEqual(tabs.map(() => payload.session.id));
    expect(signOuts).toEqual([]);
    expect(await refreshesOf(t, payload.session.id)).toBe(5);
    // The session is alive and the jar holds its current cookie.
    expect((await cookieClient(jar).restore())?.sessionId).toBe(payload.session.id);
  });

  it('a loser whose request carried the spent cookie retries with the new one (REFRESH_TOKEN_ROTATED)', async () => {
    const { jar, auth, payload } = await signedInTab();
    const spent = jar.get('refresh_token') as string;
    await auth.refresh();
    // A tab whose first refresh left with the cookie the winner has just spent (a browser's in-flight request).
    let first = true;
    const late: typeof fetch = (input, init) => {
      if (!first) return jar.fetch(input, init);
      first = false;
      return fetch(input, { ...init, headers: { ...(init?.headers as object), cookie: `refresh_token=${spent}` } });
    };
    const tab = createAuthClient({
      url: `${t.url}/graphql`,
      tokenDelivery: 'COOKIE',
      fetch: late,
      watchRevocation: false,
    });
    const restored = await tab.restore();
    expect(restored?.sessionId).toBe(payload.session.id);
    expect(first).toBe(false);
    expect(await refreshesOf(t, payload.session.id)).toBe(2);
  });

  it('logs out: the server clears the cookie and nothing is left to restore', async () => {
    const { jar, auth, payload } = await signedInTab();
    const signOuts = collectSignOuts(auth);
    await auth.logout();
    expect(signOuts).toEqual([{ reason: 'LOGOUT', sessionId: payload.session.id }]);
    expect(jar.get('refresh_token')).toBeUndefined();
    expect(await cookieClient(jar).restore()).toBeNull();
  });

  it('logs out right after a reload, before restore(): the cookie is cleared and the session revoked', async () => {
    const { jar, payload } = await signedInTab();
    const reloaded = cookieClient(jar);
    expect(reloaded.tokens).toBeNull();
    await reloaded.logout();
    expect(jar.get('refresh_token')).toBeUndefined();
    expect(await cookieClient(jar).restore()).toBeNull();
    const answer = await t.gql('{ me { id } }', {}, { token: payload.accessToken });
    expect(answer.errors?.[0]?.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'SESSION_REVOKED' });
  });

  it('sends clientId in sign-in inputs only when it is set', async () => {
    const user = await registerUser(t.gql);
    const bodies: string[] = [];
    const jar = cookieJar();
    const recording: typeof fetch = (input, init) => {
      bodies.push(String(init?.body));
      return jar.fetch(input, init);
    };
    const auth = createAuthClient({
      url: `${t.url}/graphql`,
      tokenDelivery: 'COOKIE',
      fetch: recording,
      watchRevocation: false,
    });
    await auth.login({ email: user.user.email, password: PASSWORD });
    expect(JSON.parse(bodies[0] as string).variables.input).toEqual({
      email: user.user.email,
      password: PASSWORD,
      tokenDelivery: 'COOKIE',
    });
    const withClient = createAuthClient({
      url: `${t.url}/graphql`,
      clientId: 'default',
      fetch: recording,
      watchRevocation: false,
    });
    await withClient.login({ email: user.user.email, password: PASSWORD }).catch(() => undefined);
    expect(JSON.parse(bodies.at(-1) as string).variables.input).toEqual({
      email: user.user.email,
      password: PASSWORD,
      clientId: 'default',
    });
  });
});
