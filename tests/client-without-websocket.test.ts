// The client SDK where there is no global WebSocket (Node 20, which the package supports): signing in works and the
// session is usable; only the revocation watch is left out (its end is heard at the next refresh). Passing an
// implementation (`ws`) brings the watch back. Against a real server on SQLite.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createAuthClient, type SignedOutEvent } from '../packages/client/src/index.ts';
import { MeDocument } from '../packages/client/src/operations.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { loginUser, type Payload, registerUser } from './support/graphql.ts';
import { scrapeMetrics } from './support/metrics.ts';
import { eventually } from './support/subscriptions.ts';

const PASSWORD = 'correct horse battery';

describe('the client without a global WebSocket (Node 20)', () => {
  let t: TestApp;
  const global = globalThis as { WebSocket?: unknown };
  const saved = global.WebSocket;

  beforeAll(async () => {
    t = await startTestApp();
    delete global.WebSocket;
  });
  afterEach(() => {
    expect(global.WebSocket).toBeUndefined();
  });
  afterAll(async () => {
    global.WebSocket = saved;
    await t?.close();
  });

  it('signs in, runs an operation, refreshes and logs out; no revocation watch', async () => {
    const user = await registerUser(t.gql);
    const auth = createAuthClient({ url: `${t.url}/graphql` });
    const signedIn = await auth.login({ email: user.user.email, password: PASSWORD });
    expect(auth.tokens?.sessionId).toBe(signedIn.session.id);
    expect((await auth.request(MeDocument)).me?.id).toBe(user.user.id);
    expect((await auth.refresh()).sessionId).toBe(signedIn.session.id);
    await auth.logout();
    expect(auth.tokens).toBeNull();
  });

  it('with webSocketImpl passed, it watches and signs out when its session is revoked elsewhere', async () => {
    const user = await registerUser(t.gql);
    const signOuts: SignedOutEvent[] = [];
    const auth = createAuthClient({ url: `${t.url}/graphql`, webSocketImpl: WebSocket });
    auth.on('signedOut', (event) => signOuts.push(event));
    const signedIn = await auth.login({ email: user.user.email, password: PASSWORD });
    await eventually(async () => (await scrapeMetrics(t.url)).value('graphql_ws_subscriptions_open') === 1);
    // Another device of the user ends every other session: the watch hears it.
    const other = (await loginUser(t.gql, user.user.email, PASSWORD)).data?.login as Payload;
    const answer = await t.gql('mutation { revokeOtherSessions }', {}, { token: other.accessToken });
    // The client's session and the one registerUser opened.
    expect(answer.data).toEqual({ revokeOtherSessions: 2 });
    await eventually(() => signOuts.length > 0);
    expect(signOuts).toEqual([{ reason: 'REVOKED_BY_USER', sessionId: signedIn.session.id }]);
    expect(auth.tokens).toBeNull();
    await auth.dispose();
  });
});
