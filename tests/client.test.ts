// The client SDK against a running service, through the real @apollo/client and @urql/core: sign-in, refresh
// before and after expiry (2 s access tokens), one shared refresh for concurrent calls, sign-out on revocation.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from '@apollo/client';
import { fetchExchange, Client as UrqlClient } from '@urql/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthLink } from '../packages/client/src/apollo.ts';
import {
  type AuthClient,
  AuthClientError,
  createAuthClient,
  type SignedOutEvent,
  webStorage,
} from '../packages/client/src/index.ts';
import { MeDocument } from '../packages/client/src/operations.ts';
import { authExchange } from '../packages/client/src/urql.ts';
import { AuditEvent } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { errorCode, loginUser, type Payload, registerUser } from './support/graphql.ts';
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
    const revoked = await t.gql(
      'mutation($id: ID!) { revokeSession(id: $id) }',
      { id: payload.session.id },
      {
        token: other.accessToken,
      },
    );
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
    await t.gql('mutation($id: ID!) { revokeSession(id: $id) }', { id: spare.session.id }, { token: user.accessToken });
    await sleep(200);
    expect(signOuts).toEqual([]);

    const revoked = await t.gql(
      'mutation($id: ID!) { revokeSession(id: $id) }',
      { id: payload.session.id },
      {
        token: user.accessToken,
      },
    );
    expect(revoked.data).toEqual({ revokeSession: true });
    await eventually(() => signOuts.length > 0);
    expect(signOuts).toEqual([{ reason: 'REVOKED_BY_USER', sessionId: payload.session.id }]);
    expect(auth.tokens).toBeNull();
    await eventually(async () => (await scrapeMetrics(t.url)).value('graphql_ws_subscriptions_open') === 0);
    await auth.dispose();
  });
});
