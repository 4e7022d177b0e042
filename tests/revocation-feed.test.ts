// The revocation feed (API.md "Revocations for every service"): Query.revocations and Subscription.revocations
// for service tokens with sessions:feed. Every kind of revocation listed with its exact fields, each new one
// delivered over graphql-ws and SSE from another instance sharing Redis, nothing lost between subscribing and
// reading the list under a burst, entries gone after tokensExpireBy, and a service's feed ended (socket 4403)
// when its client is disabled or its secret rotated. Through the public API, on SQLite and MariaDB.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { createTestClient, serviceToken } from './support/client-credentials.ts';
import { TestClock } from './support/clock.ts';
import {
  errorCode,
  extensionsOf,
  type Gql,
  type Payload,
  registerUser,
  revokeSession,
  signIn,
} from './support/graphql.ts';
import { type InstancePair, startInstancePair } from './support/instances.ts';
import { scrapeMetrics } from './support/metrics.ts';
import { type RunningService, serviceAvailable, servicesRequired } from './support/services.ts';
import { eventually, openClient, subscribe } from './support/subscriptions.ts';

const FIELDS = 'sessionId clientId userId reason revokedAt tokensExpireBy';
const LIST = `{ revocations { ${FIELDS} } }`;
const SUBSCRIPTION = `subscription { revocations { ${FIELDS} } }`;
const TTL_MS = 15 * 60_000;
const TOLERANCE_MS = 5_000;

interface Revocation {
  sessionId: string | null;
  clientId: string | null;
  userId: string | null;
  reason: string;
  revokedAt: string;
  tokensExpireBy: string;
}
type Event = { revocations: Revocation };

const iso = (ms: number) => new Date(ms).toISOString();
/** A session's revocation as the feed must tell it, revoked at `at` (ms). */
const sessionRevocation = (
  sessionId: string,
  userId: string | null,
  reason: string,
  at: number,
  clientId: string | null = 'default',
) => ({
  sessionId,
  clientId,
  userId,
  reason,
  revokedAt: iso(at),
  tokensExpireBy: iso(at + TTL_MS + TOLERANCE_MS),
});

async function list(gql: Gql, token: string): Promise<Revocation[]> {
  const response = await gql<{ revocations: Revocation[] }>(LIST, {}, { token });
  if (!response.data?.revocations) throw new Error(`revocations failed: ${JSON.stringify(response.errors)}`);
  return response.data.revocations;
}

const ofSession = (revocations: Revocation[], sessionId: string) =>
  revocations.filter((r) => r.sessionId === sessionId);
const ofClient = (revocations: Revocation[], clientId: string) =>
  revocations.filter((r) => r.sessionId === null && r.clientId === clientId);

let clientCount = 0;
/** A CONFIDENTIAL client declaring `scopes`, and a service token of it. */
async function feedClient(t: TestApp, adminToken: string, scopes = ['sessions:feed']) {
  const client = await createTestClient(t.gql, adminToken, { id: `feed-${++clientCount}-${Date.now()}`, scopes });
  return { client, token: await serviceToken(t.url, client) };
}

/** A Subscription.revocations over SSE: collects the data lines until the stream ends. */
async function sse(url: string, token: string) {
  const controller = new AbortController();
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: SUBSCRIPTION }),
    signal: controller.signal,
  });
  expect(response.headers.get('content-type')).toContain('text/event-stream');
  const events: Revocation[] = [];
  let text = '';
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const ended = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return 'ended';
        text += new TextDecoder().decode(value);
        const lines = text.split('\n');
        text = lines.pop() ?? '';
        for (const line of lines) {
          // The complete event's data line is empty.
          if (!line.startsWith('data:') || line.trim() === 'data:') continue;
          const revocation = JSON.parse(line.slice(5)).data?.revocations;
          if (revocation) events.push(revocation);
        }
      }
    } catch {
      return 'aborted';
    }
  })();
  return { events, ended, close: () => controller.abort() };
}

describe.each(dialects())('revocation feed (%s)', (dialect) => {
  const clock = new TestClock();
  let t: TestApp;
  let admin: Payload;
  let feed: { client: { id: string; secret: string | null }; token: string };

  beforeAll(async () => {
    t = await startTestApp({ dialect, clock });
    admin = await signInAsAdmin(t);
    feed = await feedClient(t, admin.accessToken);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('is FORBIDDEN to user tokens (an admin too) and to service tokens without sessions:feed', async () => {
    const user = await registerUser(t.gql);
    const reader = await feedClient(t, admin.accessToken, ['users:read']);
    for (const token of [user.accessToken, admin.accessToken, reader.token]) {
      expect(errorCode(await t.gql(LIST, {}, { token }))).toBe('FORBIDDEN');
      const subscription = subscribe<Event>(t.url, SUBSCRIPTION, token);
      await subscription.completed;
      expect((subscription.errors[0] as { extensions?: { code?: string } })?.extensions?.code).toBe('FORBIDDEN');
      expect(subscription.events).toEqual([]);
      await subscription.dispose();
    }
    const anonymous = await t.gql(LIST);
    expect(extensionsOf(anonymous)).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'AUTHENTICATION_REQUIRED' });
  });

  it("lists a logout, a revoked session, a disabled account's, a deleted account's and a demoted admin's sessions", async () => {
    const at = clock.now();
    const leaving = await registerUser(t.gql);
    expect((await t.gql('mutation { logout }', {}, { token: leaving.accessToken })).data).toEqual({ logout: true });

    const owner = await registerUser(t.gql);
    const second = await signIn(t.gql, owner.user.email, owner.password);
    const revoked = await revokeSession(t.gql, second.session.id, owner.accessToken);
    expect(revoked.data).toEqual({ revokeSession: true });

    const disabled = await registerUser(t.gql);
    const disabling = await t.gql(
      'mutation($id: ID!) { setUserDisabled(userId: $id, disabled: true) { id } }',
      { id: disabled.user.id },
      { token: admin.accessToken },
    );
    expect(disabling.errors).toBeUndefined();

    const deleted = await registerUser(t.gql);
    const deletion = await t.gql(
      'mutation($p: String) { deleteAccount(password: $p) }',
      { p: deleted.password },
      {
        token: deleted.accessToken,
      },
    );
    expect(deletion.data).toEqual({ deleteAccount: true });

    const demoted = await registerUser(t.gql);
    const roles = 'mutation($id: ID!, $r: [Role!]!) { setUserRoles(userId: $id, roles: $r) { id } }';
    await t.gql(roles, { id: demoted.user.id, r: ['USER', 'ADMIN'] }, { token: admin.accessToken });
    const promoted = await list(t.gql, feed.token);
    // Adding a role revokes nothing.
    expect(ofSession(promoted, demoted.session.id)).toEqual([]);
    await t.gql(roles, { id: demoted.user.id, r: ['USER'] }, { token: admin.accessToken });

    const revocations = await list(t.gql, feed.token);
    expect(ofSession(revocations, leaving.session.id)).toEqual([
      sessionRevocation(leaving.session.id, leaving.user.id, 'LOGOUT', at),
    ]);
    expect(ofSession(revocations, second.session.id)).toEqual([
      sessionRevocation(second.session.id, owner.user.id, 'REVOKED_BY_USER', at),
    ]);
    expect(ofSession(revocations, owner.session.id)).toEqual([]);
    expect(ofSession(revocations, disabled.session.id)).toEqual([
      sessionRevocation(disabled.session.id, disabled.user.id, 'REVOKED_BY_ADMIN', at),
    ]);
    expect(ofSession(revocations, deleted.session.id)).toEqual([
      sessionRevocation(deleted.session.id, deleted.user.id, 'ACCOUNT_DELETED', at),
    ]);
    expect(ofSession(revocations, demoted.session.id)).toEqual([
      sessionRevocation(demoted.session.id, demoted.user.id, 'REVOKED_BY_ADMIN', at),
    ]);
  });

  it("lists a disabled client's sessions and the client itself, ahead of now while it stays disabled", async () => {
    const app = await createTestClient(t.gql, admin.accessToken, { id: `app-${Date.now()}`, type: 'PUBLIC' });
    const user = await t.gql<{ register: Payload }>(
      'mutation($input: RegisterInput!) { register(input: $input) { session { id } user { id } } }',
      { input: { email: `app-${Date.now()}@example.com`, password: 'correct horse battery', clientId: app.id } },
    );
    const session = user.data?.register.session.id as string;
    const at = clock.now();
    const disabling = await t.gql(
      'mutation($id: ID!) { setClientDisabled(id: $id, disabled: true) { id disabled } }',
      { id: app.id },
      { token: admin.accessToken },
    );
    expect(disabling.data).toEqual({ setClientDisabled: { id: app.id, disabled: true } });

    const revocations = await list(t.gql, feed.token);
    expect(ofSession(revocations, session)).toEqual([
      sessionRevocation(session, user.data?.register.user.id as string, 'CLIENT_DISABLED', at, app.id),
    ]);
    const [client] = ofClient(revocations, app.id);
    expect(ofClient(revocations, app.id)).toHaveLength(1);
    const revokedAt = Date.parse(client?.revokedAt as string);
    // Every token of a disabled client is refused: revokedAt is a whole second past any iat a token issued before
    // the next announcement could carry (the re-announcement period and a clock tolerance ahead).
    expect(revokedAt % 1000).toBe(0);
    expect(revokedAt).toBeGreaterThan(at + 5_000 + TOLERANCE_MS);
    expect(client).toEqual({
      sessionId: null,
      clientId: app.id,
      userId: null,
      reason: 'CLIENT_DISABLED',
      revokedAt: iso(revokedAt),
      tokensExpireBy: iso(revokedAt + TTL_MS + TOLERANCE_MS),
    });
  });

  it("lists a rotated secret as the client's revocation from the first whole second after it", async () => {
    const service = await feedClient(t, admin.accessToken, ['users:read']);
    const at = clock.now();
    const rotation = await t.gql(
      'mutation($id: ID!) { rotateClientSecret(id: $id) { client { id } } }',
      { id: service.client.id },
      { token: admin.accessToken },
    );
    expect(rotation.errors).toBeUndefined();
    const cutoff = (Math.floor(at / 1000) + 1) * 1000;
    expect(ofClient(await list(t.gql, feed.token), service.client.id)).toEqual([
      {
        sessionId: null,
        clientId: service.client.id,
        userId: null,
        reason: 'CLIENT_SECRET_ROTATED',
        revokedAt: iso(cutoff),
        tokensExpireBy: iso(cutoff + TTL_MS + TOLERANCE_MS),
      },
    ]);
    // The token issued before the rotation is the one it refuses.
    const refused = await t.gql('{ users(first: 1) { totalCount } }', {}, { token: service.token });
    expect(extensionsOf(refused)).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'CLIENT_DISABLED' });
  });

  it('delivers each new revocation over graphql-ws and SSE, and counts consumers and events', async () => {
    const ws = subscribe<Event>(t.url, SUBSCRIPTION, feed.token);
    const stream = await sse(t.url, feed.token);
    await eventually(async () => (await scrapeMetrics(t.url)).value('auth_revocation_feed_consumers') === 2);
    const sentBefore = (await scrapeMetrics(t.url)).value('auth_revocation_feed_events_total');

    const user = await registerUser(t.gql);
    const at = clock.now();
    await t.gql('mutation { logout }', {}, { token: user.accessToken });
    const expected = sessionRevocation(user.session.id, user.user.id, 'LOGOUT', at);
    await eventually(() => ws.events.some((e) => e.revocations.sessionId === user.session.id));
    await eventually(() => stream.events.some((e) => e.sessionId === user.session.id));
    expect(ws.events.filter((e) => e.revocations.sessionId === user.session.id)).toEqual([{ revocations: expected }]);
    expect(stream.events.filter((e) => e.sessionId === user.session.id)).toEqual([expected]);
    // One event, sent to each of the two subscribers.
    expect((await scrapeMetrics(t.url)).value('auth_revocation_feed_events_total')).toBe(sentBefore + 2);

    await ws.dispose();
    stream.close();
    await eventually(async () => (await scrapeMetrics(t.url)).value('auth_revocation_feed_consumers') === 0);
  });

  it("ends a service's feed when its client is disabled: the client's revocation, then complete and close 4403", async () => {
    const own = await feedClient(t, admin.accessToken);
    const ws = subscribe<Event>(t.url, SUBSCRIPTION, own.token);
    const stream = await sse(t.url, own.token);
    await eventually(async () => (await scrapeMetrics(t.url)).value('auth_revocation_feed_consumers') === 2);

    const disabling = await t.gql(
      'mutation($id: ID!) { setClientDisabled(id: $id, disabled: true) { id } }',
      { id: own.client.id },
      { token: admin.accessToken },
    );
    expect(disabling.errors).toBeUndefined();
    expect(await ws.closed).toBe(4403);
    expect(await stream.ended).toBe('ended');
    for (const events of [ws.events.map((e) => e.revocations), stream.events]) {
      expect(ofClient(events, own.client.id).map((e) => e.reason)).toEqual(['CLIENT_DISABLED']);
    }
    expect(errorCode(await t.gql(LIST, {}, { token: own.token }))).toBe('UNAUTHENTICATED');
    await ws.dispose();
  });

  it("ends a service's feed when its client's secret is rotated", async () => {
    const own = await feedClient(t, admin.accessToken);
    const ws = subscribe<Event>(t.url, SUBSCRIPTION, own.token);
    // A socket of the same token with nothing running closes at once.
    const idle = openClient(t.url, own.token);
    await eventually(async () => (await scrapeMetrics(t.url)).value('auth_revocation_feed_consumers') === 1);
    await t.gql(
      'mutation($id: ID!) { rotateClientSecret(id: $id) { client { id } } }',
      { id: own.client.id },
      { token: admin.accessToken },
    );
    expect(await ws.closed).toBe(4403);
    expect(
      ofClient(
        ws.events.map((e) => e.revocations),
        own.client.id,
      ).map((e) => e.reason),
    ).toEqual(['CLIENT_SECRET_ROTATED']);
    expect(await idle.closed).toBe(4403);
    await ws.dispose();
    await idle.client.dispose();
  });

  it('forgets each entry once its tokensExpireBy has passed, but not a client that is still disabled', async () => {
    const user = await registerUser(t.gql);
    await t.gql('mutation { logout }', {}, { token: user.accessToken });
    const before = await list(t.gql, feed.token);
    const entry = ofSession(before, user.session.id)[0] as Revocation;
    expect(entry).toBeDefined();
    const disabledClients = before.filter((r) => r.sessionId === null && r.reason === 'CLIENT_DISABLED');
    expect(disabledClients.length).toBeGreaterThan(0);
    const expiring = await sse(t.url, feed.token);

    clock.advance(Date.parse(entry.tokensExpireBy) - clock.now() - 1);
    // Every token issued before has expired by now: a new admin, a new service token.
    const fresh = await feedClient(t, (await signInAsAdmin(t)).accessToken);
    expect(ofSession(await list(t.gql, fresh.token), user.session.id)).toHaveLength(1);
    clock.advance(1);
    // The feed token has expired meanwhile: its SSE stream completes.
    expect(await expiring.ended).toBe('ended');
    const after = await list(t.gql, fresh.token);
    // Every session in this file was revoked at or before that instant (the clock stood still).
    expect(after.filter((r) => r.sessionId !== null)).toEqual([]);
    // A rotation's revokedAt is the next whole second: its entry stays until its own tokensExpireBy.
    const rotated = after.filter((r) => r.reason === 'CLIENT_SECRET_ROTATED');
    expect(rotated.length).toBeGreaterThan(0);
    const lastExpiry = Math.max(...rotated.map((r) => Date.parse(r.tokensExpireBy)));
    expect(lastExpiry).toBeGreaterThan(clock.now());
    expect(lastExpiry).toBeLessThanOrEqual(clock.now() + 1000);
    clock.advance(lastExpiry - clock.now());
    const later = await list(t.gql, (await feedClient(t, (await signInAsAdmin(t)).accessToken)).token);
    expect(later.filter((r) => r.reason === 'CLIENT_SECRET_ROTATED')).toEqual([]);
    // Disabled clients stay, announced ahead of the (moved) clock.
    const still = later.filter((r) => r.reason === 'CLIENT_DISABLED');
    expect(still.map((r) => r.clientId).sort()).toEqual(disabledClients.map((r) => r.clientId).sort());
    for (const revocation of still) expect(Date.parse(revocation.revokedAt)).toBeGreaterThan(clock.now());
  });
});

describe.skipIf(!serviceAvailable('redis-server') && !servicesRequired).each(dialects())(
  'revocation feed across instances sharing Redis (%s)',
  (dialect) => {
    let pair: InstancePair;
    let redis: RunningService;
    let one: TestApp;
    let two: TestApp;
    let admin: Payload;
    let feedToken: string;
    let sharedEnv: Record<string, string>;

    beforeAll(async () => {
      pair = await startInstancePair(dialect);
      ({ one, two, redis, env: sharedEnv } = pair);
      admin = await signInAsAdmin(one);
      const client = await createTestClient(one.gql, admin.accessToken, {
        id: `feed-x-${Date.now()}`,
        scopes: ['sessions:feed'],
      });
      feedToken = await serviceToken(two.url, client);
    });
    afterAll(() => pair?.close());

    it("tells instance 2's graphql-ws and SSE subscribers each revocation made on instance 1", async () => {
      const ws = subscribe<Event>(two.url, SUBSCRIPTION, feedToken);
      const stream = await sse(two.url, feedToken);
      await eventually(async () => (await scrapeMetrics(two.url)).value('auth_revocation_feed_consumers') === 2);

      const user = await registerUser(one.gql);
      const before = Date.now();
      await one.gql('mutation { logout }', {}, { token: user.accessToken });
      const after = Date.now();
      await eventually(() => ws.events.some((e) => e.revocations.sessionId === user.session.id));
      await eventually(() => stream.events.some((e) => e.sessionId === user.session.id));
      const [fromWs] = ws.events.filter((e) => e.revocations.sessionId === user.session.id);
      const fromSse = stream.events.filter((e) => e.sessionId === user.session.id);
      expect(fromSse).toEqual([fromWs?.revocations]);
      const revokedAt = Date.parse(fromWs?.revocations.revokedAt as string);
      expect(revokedAt).toBeGreaterThanOrEqual(before);
      expect(revokedAt).toBeLessThanOrEqual(after);
      expect(fromWs?.revocations).toEqual(sessionRevocation(user.session.id, user.user.id, 'LOGOUT', revokedAt));

      // A client disabled on instance 1: instance 2's subscribers hear the client's revocation.
      const app = await createTestClient(one.gql, admin.accessToken, { id: `app-x-${Date.now()}`, type: 'PUBLIC' });
      await one.gql(
        'mutation($id: ID!) { setClientDisabled(id: $id, disabled: true) { id } }',
        { id: app.id },
        { token: admin.accessToken },
      );
      await eventually(
        () =>
          ofClient(
            ws.events.map((e) => e.revocations),
            app.id,
          ).length > 0,
      );
      await eventually(() => ofClient(stream.events, app.id).length > 0);
      expect(
        ofClient(
          ws.events.map((e) => e.revocations),
          app.id,
        )[0]?.reason,
      ).toBe('CLIENT_DISABLED');
      await ws.dispose();
      stream.close();
    });

    it('announces a disabled client again while it stays disabled, each time with a later revokedAt ahead of now', async () => {
      const app = await createTestClient(one.gql, admin.accessToken, { id: `app-y-${Date.now()}`, type: 'PUBLIC' });
      const ws = subscribe<Event>(two.url, SUBSCRIPTION, feedToken);
      await eventually(async () => (await scrapeMetrics(two.url)).value('auth_revocation_feed_consumers') === 1);
      await one.gql(
        'mutation($id: ID!) { setClientDisabled(id: $id, disabled: true) { id } }',
        { id: app.id },
        { token: admin.accessToken },
      );
      const announcements = () =>
        ofClient(
          ws.events.map((e) => e.revocations),
          app.id,
        );
      await eventually(() => announcements().length >= 1);
      const first = Date.now();
      await eventually(() => announcements().length >= 2, 10_000);
      const [earlier, later] = announcements() as [Revocation, Revocation];
      expect(later.reason).toBe('CLIENT_DISABLED');
      expect(Date.parse(later.revokedAt)).toBeGreaterThan(Date.parse(earlier.revokedAt));
      // Ahead of the time it was heard by more than one clock tolerance: covers tokens until the next one.
      expect(Date.parse(later.revokedAt)).toBeGreaterThan(first + TOLERANCE_MS);
      expect(Date.parse(later.tokensExpireBy)).toBe(Date.parse(later.revokedAt) + TTL_MS + TOLERANCE_MS);
      await ws.dispose();
    });

    it("lists on a new instance what the database says: sessions with their client, deleted accounts' without a user", async () => {
      const leaving = await registerUser(one.gql);
      await one.gql('mutation { logout }', {}, { token: leaving.accessToken });
      const deleted = await registerUser(one.gql);
      await one.gql(
        'mutation($p: String) { deleteAccount(password: $p) }',
        { p: deleted.password },
        {
          token: deleted.accessToken,
        },
      );
      const heard = await list(two.gql, feedToken);
      const [logout] = ofSession(heard, leaving.session.id);
      const [deletion] = ofSession(heard, deleted.session.id);
      expect(logout?.reason).toBe('LOGOUT');
      expect(deletion).toEqual(
        sessionRevocation(
          deleted.session.id,
          deleted.user.id,
          'ACCOUNT_DELETED',
          Date.parse(deletion?.revokedAt ?? ''),
        ),
      );

      const three = await startTestApp({ dialect, env: sharedEnv, databaseUrl: one.databaseUrl });
      try {
        const loaded = await list(three.gql, feedToken);
        // The same entries, read back from the sessions table and the audit trail (anonymised: no user).
        expect(ofSession(loaded, leaving.session.id)).toEqual([logout]);
        expect(ofSession(loaded, deleted.session.id)).toEqual([{ ...deletion, userId: null, clientId: null }]);
      } finally {
        await three.close();
      }
    });

    it('takes bus messages without clientIds (older instances) and ignores malformed ones', async () => {
      const ws = subscribe<Event>(two.url, SUBSCRIPTION, feedToken);
      await eventually(async () => (await scrapeMetrics(two.url)).value('auth_revocation_feed_consumers') === 1);
      const publisher = new Redis(redis.url);
      try {
        const at = Date.now();
        const old = { userId: randomUUID(), sessionIds: [randomUUID()], reason: 'LOGOUT', revokedAt: at };
        const malformed = { ...old, sessionIds: [randomUUID()], clientIds: { x: 42 } };
        const last = { ...old, sessionIds: [randomUUID()], clientIds: { [randomUUID()]: 'not-its-session' } };
        for (const message of [old, malformed, last])
          await publisher.publish('auth:revocations', JSON.stringify(message));
        const heard = () => ws.events.map((e) => e.revocations);
        await eventually(() => heard().some((r) => r.sessionId === last.sessionIds[0]));
        expect(heard().filter((r) => r.sessionId === old.sessionIds[0])).toEqual([
          sessionRevocation(old.sessionIds[0] as string, old.userId, 'LOGOUT', at, null),
        ]);
        // Published between the two, so it would have arrived before the last one.
        expect(heard().filter((r) => r.sessionId === malformed.sessionIds[0])).toEqual([]);
        // A client named for another session is no client of this one.
        expect(heard().find((r) => r.sessionId === last.sessionIds[0])?.clientId).toBeNull();
      } finally {
        publisher.disconnect();
        await ws.dispose();
      }
    });

    it('loses nothing when a consumer subscribes and then reads the list during a burst of 50 revocations', async () => {
      const user = await registerUser(one.gql);
      const sessions = await Promise.all(
        Array.from({ length: 50 }, () => signIn(one.gql, user.user.email, user.password)),
      );
      const ws = subscribe<Event>(two.url, SUBSCRIPTION, feedToken);
      const logouts = Promise.all(
        sessions.map((session) => one.gql('mutation { logout }', {}, { token: session.accessToken })),
      );
      // Read while the revocations commit: each is in the list, or arrives on the subscription.
      const listed = await list(two.gql, feedToken);
      const results = await logouts;
      expect(results.map((r) => r.data)).toEqual(sessions.map(() => ({ logout: true })));
      const seen = () => new Set([...listed.map((r) => r.sessionId), ...ws.events.map((e) => e.revocations.sessionId)]);
      await eventually(() => sessions.every((session) => seen().has(session.session.id)), 10_000);
      // Each once on the subscription.
      const heard = ws.events
        .map((e) => e.revocations.sessionId)
        .filter((id) => sessions.some((s) => s.session.id === id));
      expect(new Set(heard).size).toBe(heard.length);
      await ws.dispose();
    });
  },
);
