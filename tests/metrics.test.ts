// GET /metrics: Prometheus text with exact counts of HTTP requests, GraphQL operations, sign-ins, refreshes,
// revocations and open subscriptions after a known sequence of operations; optionally behind a bearer token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { TestClock } from './support/clock.ts';
import { errorCode, loginUser, PAYLOAD, type Payload, registerUser, uniqueEmail } from './support/graphql.ts';
import { parseMetrics, scrapeMetrics } from './support/metrics.ts';
import { enrollTotp, TOTP_STEP_MS, totpCode, VERIFY_MFA } from './support/mfa.ts';
import { eventually, subscribe } from './support/subscriptions.ts';

const REGISTER = `mutation Register($input: RegisterInput!) { register(input: $input) { ${PAYLOAD} } }`;
const LOGIN = `mutation Login($input: LoginInput!) { login(input: $input) { ${PAYLOAD} } }`;
const REFRESH = `mutation Refresh($t: String!) { refresh(refreshToken: $t) { ${PAYLOAD} } }`;

describe('metrics', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  it('counts requests, operations, sign-ins by outcome, refreshes, revocations and subscriptions exactly', async () => {
    const email = uniqueEmail();
    const password = 'correct horse battery';
    const registered = await t.gql<{ register: Payload }>(REGISTER, { input: { email, password } });
    expect(registered.errors).toBeUndefined();
    expect(errorCode(await t.gql(REGISTER, { input: { email, password } }))).toBe('EMAIL_TAKEN');
    const first = await t.gql<{ login: Payload }>(LOGIN, { input: { email, password } });
    const second = await t.gql<{ login: Payload }>(LOGIN, { input: { email, password } });
    expect(first.errors ?? second.errors).toBeUndefined();
    expect(errorCode(await t.gql(LOGIN, { input: { email, password: 'wrong password!' } }))).toBe(
      'INVALID_CREDENTIALS',
    );
    const refreshed = await t.gql<{ refresh: Payload }>(REFRESH, { t: first.data?.login.refreshToken });
    expect(refreshed.errors).toBeUndefined();
    const replayed = await t.gql(REFRESH, { t: first.data?.login.refreshToken });
    expect(replayed.errors?.[0]?.extensions?.reason).toBe('REFRESH_TOKEN_ROTATED');
    expect((await t.gql('mutation { logout }', {}, { token: second.data?.login.accessToken })).errors).toBeUndefined();
    expect((await t.gql('query Me { me { id } }', {}, { token: refreshed.data?.refresh.accessToken })).errors).toBe(
      undefined,
    );
    const graphqlPosts = 9;

    const subscription = subscribe(
      t.url,
      'subscription Watch { sessionRevoked { sessionId } }',
      registered.data?.register.accessToken,
    );
    await eventually(async () => (await scrapeMetrics(t.url)).value('graphql_ws_subscriptions_open') === 1);

    const scrape = await scrapeMetrics(t.url);
    expect(scrape.value('auth_registrations_total', { outcome: 'success' })).toBe(1);
    expect(scrape.value('auth_registrations_total', { outcome: 'EMAIL_TAKEN' })).toBe(1);
    expect(scrape.value('auth_logins_total', { method: 'password', outcome: 'success' })).toBe(2);
    expect(scrape.value('auth_logins_total', { method: 'password', outcome: 'INVALID_CREDENTIALS' })).toBe(1);
    expect(scrape.value('auth_refreshes_total', { outcome: 'success' })).toBe(1);
    expect(scrape.value('auth_refreshes_total', { outcome: 'REFRESH_TOKEN_ROTATED' })).toBe(1);
    expect(scrape.value('auth_revocations_total', { reason: 'LOGOUT' })).toBe(1);

    const login = { operation: 'Login', type: 'mutation' };
    expect(scrape.value('graphql_operations_total', { ...login, outcome: 'success' })).toBe(2);
    expect(scrape.value('graphql_operations_total', { ...login, outcome: 'error' })).toBe(1);
    expect(scrape.value('graphql_operation_duration_seconds_count', login)).toBe(3);
    expect(scrape.value('graphql_operations_total', { operation: 'Refresh', type: 'mutation', outcome: 'error' })).toBe(
      1,
    );
    expect(
      scrape.value('graphql_operations_total', { operation: 'anonymous', type: 'mutation', outcome: 'success' }),
    ).toBe(1);
    expect(scrape.value('graphql_operations_total', { operation: 'Me', type: 'query', outcome: 'success' })).toBe(1);
    expect(
      scrape.value('graphql_operations_total', { operation: 'Watch', type: 'subscription', outcome: 'success' }),
    ).toBe(1);

    const post = { method: 'POST', route: '/graphql', status: '200' };
    expect(scrape.value('http_requests_total', post)).toBe(graphqlPosts);
    expect(scrape.value('http_request_duration_seconds_count', post)).toBe(graphqlPosts);
    expect(scrape.types.get('http_request_duration_seconds')).toBe('histogram');
    expect(scrape.samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds')).toBe(true);
    // Earlier scrapes are requests too, reported under their own route.
    expect(scrape.value('http_requests_total', { method: 'GET', route: '/metrics', status: '200' })).toBeGreaterThan(0);

    await subscription.dispose();
    await eventually(async () => (await scrapeMetrics(t.url)).value('graphql_ws_subscriptions_open') === 0);
  });

  it('counts a revocation of several sessions once per session, by reason', async () => {
    const email = uniqueEmail();
    const password = 'correct horse battery';
    const before = await scrapeMetrics(t.url);
    const sessions: Payload[] = [];
    sessions.push(
      ((await t.gql<{ register: Payload }>(REGISTER, { input: { email, password } })).data as any).register,
    );
    for (let i = 0; i < 3; i++) {
      sessions.push(((await t.gql<{ login: Payload }>(LOGIN, { input: { email, password } })).data as any).login);
    }
    const revoked = await t.gql('mutation { revokeOtherSessions }', {}, { token: sessions[0]?.accessToken });
    expect(revoked.data).toEqual({ revokeOtherSessions: 3 });
    const after = await scrapeMetrics(t.url);
    const reason = { reason: 'REVOKED_BY_USER' };
    expect(after.value('auth_revocations_total', reason) - before.value('auth_revocations_total', reason)).toBe(3);
  });

  it('counts requests that the guards refuse before GraphQL runs (CSRF, malformed parameters)', async () => {
    const before = await scrapeMetrics(t.url);
    // A GET without a preflight-only header is refused by CSRF prevention; garbage `variables` by the parser guard.
    const csrf = await fetch(`${t.url}/graphql?query=${encodeURIComponent('{ me { id } }')}`);
    const malformed = await fetch(`${t.url}/graphql?query=${encodeURIComponent('{ me { id } }')}&variables=%7B`, {
      headers: { 'x-graphql-yoga-csrf': '1' },
    });
    const after = await scrapeMetrics(t.url);
    for (const response of [csrf, malformed]) {
      const labels = { method: 'GET', route: '/graphql', status: String(response.status) };
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(after.value('http_requests_total', labels) - before.value('http_requests_total', labels)).toBe(
        csrf.status === malformed.status ? 2 : 1,
      );
    }
  });

  it('counts the MFA step and passkey sign-ins under their own methods, and login answering MFA_REQUIRED', async () => {
    const clock = new TestClock();
    const own = await startTestApp({ clock });
    try {
      const user = await registerUser(own.gql);
      const { secret } = await enrollTotp(own.gql, user.accessToken, clock.now());
      clock.advance(TOTP_STEP_MS);
      const mfaToken = (await loginUser(own.gql, user.user.email, user.password)).errors?.[0]?.extensions?.mfaToken;
      expect(typeof mfaToken).toBe('string');
      const wrong = await own.gql(VERIFY_MFA, { input: { mfaToken, code: totpCode(secret, clock.now(), -5) } });
      expect(errorCode(wrong)).toBe('INVALID_CODE');
      const right = await own.gql(VERIFY_MFA, { input: { mfaToken, code: totpCode(secret, clock.now()) } });
      expect(right.errors).toBeUndefined();
      // A passkey answer that names no passkey of ours: refused, and counted as a passkey sign-in.
      const challenge = await own.gql<{ startPasskeyLogin: { challengeId: string } }>(
        'mutation { startPasskeyLogin { challengeId } }',
      );
      const response = { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: {}, clientExtensionResults: {} };
      const passkey = await own.gql(
        'mutation($input: PasskeyLoginInput!) { loginWithPasskey(input: $input) { accessToken } }',
        { input: { challengeId: challenge.data?.startPasskeyLogin.challengeId, response } },
      );
      expect(errorCode(passkey)).toBe('INVALID_CREDENTIALS');

      const scrape = await scrapeMetrics(own.url);
      expect(scrape.value('auth_logins_total', { method: 'password', outcome: 'MFA_REQUIRED' })).toBe(1);
      expect(scrape.value('auth_logins_total', { method: 'mfa', outcome: 'INVALID_CODE' })).toBe(1);
      expect(scrape.value('auth_logins_total', { method: 'mfa', outcome: 'success' })).toBe(1);
      expect(scrape.value('auth_logins_total', { method: 'passkey', outcome: 'INVALID_CREDENTIALS' })).toBe(1);
      expect(scrape.value('auth_logins_total', { method: 'password', outcome: 'success' }) ?? 0).toBe(0);
    } finally {
      await own.close();
    }
  });

  it('groups unknown paths under one route label', async () => {
    await fetch(`${t.url}/no/such/path/${Math.random()}`);
    const scrape = await scrapeMetrics(t.url);
    expect(scrape.samples.filter((s) => s.name === 'http_requests_total').map((s) => s.labels.route)).not.toContain(
      expect.stringContaining('/no/such'),
    );
    expect(scrape.value('http_requests_total', { method: 'GET', route: 'other', status: '404' })).toBe(1);
  });
});

describe('metrics behind METRICS_TOKEN', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { METRICS_TOKEN: 'scrape-secret-0123456789' } });
  });
  afterAll(() => t?.close());

  it('answers 401 without the bearer token and the metrics with it', async () => {
    expect((await fetch(`${t.url}/metrics`)).status).toBe(401);
    const wrong = await fetch(`${t.url}/metrics`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${t.url}/metrics`, { headers: { authorization: 'Bearer scrape-secret-0123456789' } });
    expect(right.status).toBe(200);
    expect(right.headers.get('content-type')).toContain('text/plain');
    expect(parseMetrics(await right.text()).types.get('auth_logins_total')).toBe('counter');
  });
});
