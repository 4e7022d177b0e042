import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseUrl, dialects } from './support/app.ts';
import { ed25519Pem } from './support/expect.ts';
import {
  errorCode,
  type Gql,
  graphqlClient,
  loginUser,
  me,
  type Payload,
  registerUser,
  revokeSession,
} from './support/graphql.ts';
import { type ServiceProcess, startServiceProcess } from './support/processes.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';
import { eventually, subscribe } from './support/subscriptions.ts';

const SUBSCRIPTION = 'subscription { sessionRevoked { sessionId reason } }';
type Event = { sessionRevoked: { sessionId: string; reason: string } };

describe.skipIf(!serviceAvailable('redis-server'))('two instances sharing the database and Redis', () => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-multi-'));
  let redis: RunningService;
  let one: ServiceProcess;
  let two: ServiceProcess;
  let gqlOne: Gql;
  let gqlTwo: Gql;

  beforeAll(async () => {
    redis = await startRedis();
    // MariaDB when the run has it (the production set-up); otherwise one SQLite file shared by both.
    const dialect = dialects().includes('mysql') ? 'mysql' : 'sqlite';
    const key = ed25519Pem();
    const env = {
      DATABASE_URL: await databaseUrl(dialect, dir),
      REDIS_URL: redis.url,
      JWT_PRIVATE_KEY: key,
      BCRYPT_COST: '4',
      DATA_DIR: dir,
      ISSUER: 'https://auth.test',
      AUDIENCE: 'https://api.test',
    };
    // One at a time: the first applies the migrations.
    one = await startServiceProcess(env);
    two = await startServiceProcess(env);
    gqlOne = graphqlClient(one.url);
    gqlTwo = graphqlClient(two.url);
  });

  afterAll(async () => {
    await one?.stop();
    await two?.stop();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses on instance 2 a token revoked on instance 1, and tells instance 2 subscribers', async () => {
    const watcher = await registerUser(gqlOne);
    const other = (await loginUser(gqlTwo, watcher.user.email, watcher.password)).data?.login as Payload;
    expect((await me(gqlTwo, other.accessToken)).data?.me).toEqual({ id: watcher.user.id });

    const subscription = subscribe<Event>(two.url, SUBSCRIPTION, watcher.accessToken);
    await new Promise((r) => setTimeout(r, 200));
    const revoked = await revokeSession(gqlOne, other.session.id, watcher.accessToken);
    expect(revoked.data).toEqual({ revokeSession: true });

    const event = await subscription.next(1);
    expect(event.sessionRevoked).toEqual({ sessionId: other.session.id, reason: 'REVOKED_BY_USER' });
    // By the time the event has reached a client of instance 2, instance 2 refuses the token.
    expect(errorCode(await me(gqlTwo, other.accessToken))).toBe('UNAUTHENTICATED');
    await subscription.dispose();
  });

  it('keeps serving while Redis is down and enforces revocations made meanwhile once it is back', async () => {
    const watcher = await registerUser(gqlOne);
    const victim = (await loginUser(gqlOne, watcher.user.email, watcher.password)).data?.login as Payload;
    const subscription = subscribe<Event>(two.url, SUBSCRIPTION, watcher.accessToken);
    await new Promise((r) => setTimeout(r, 200));

    await redis.kill?.();
    // Degraded, not down: a load balancer keeps sending requests.
    await eventually(async () => (await (await fetch(`${one.url}/readyz`)).json()).status === 'degraded');
    const ready = await fetch(`${one.url}/readyz`);
    expect([ready.status, await ready.json()]).toEqual([200, { status: 'degraded', down: ['redis'] }]);

    // Still serving: sign-in, reads and revocation all work without Redis.
    expect((await me(gqlTwo, watcher.accessToken)).data?.me).toEqual({ id: watcher.user.id });
    const fresh = await loginUser(gqlTwo, watcher.user.email, watcher.password);
    expect(fresh.errors).toBeUndefined();
    const revoked = await gqlOne('mutation { logout }', {}, { token: victim.accessToken });
    expect(revoked.data).toEqual({ logout: true });
    expect(errorCode(await me(gqlOne, victim.accessToken))).toBe('UNAUTHENTICATED');

    await redis.start?.();
    // Instance 2 catches up from the database as soon as its subscription to Redis is back.
    await eventually(async () => errorCode(await me(gqlTwo, victim.accessToken)) === 'UNAUTHENTICATED', 15_000);
    const event = await subscription.next(1, 15_000);
    expect(event.sessionRevoked).toEqual({ sessionId: victim.session.id, reason: 'LOGOUT' });
    await eventually(async () => (await (await fetch(`${one.url}/readyz`)).json()).status === 'ok', 15_000);
    await subscription.dispose();
  });
});
