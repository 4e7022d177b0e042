import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { ed25519Pem } from './support/expect.ts';
import { errorCode, registerUser } from './support/graphql.ts';
import { createDatabase, serviceAvailable, startMariaDb } from './support/services.ts';

describe('HTTP and WebSocket transport', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  it('answers /healthz and /readyz when the database is reachable', async () => {
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${t.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ok' });
  });

  it('runs queries over GET and refuses mutations over GET', async () => {
    const user = await registerUser(t.gql);
    const query = await fetch(`${t.url}/graphql?query=${encodeURIComponent('{ me { id } }')}`, {
      headers: { authorization: `Bearer ${user.accessToken}`, accept: 'application/json' },
    });
    expect(await query.json()).toEqual({ data: { me: { id: user.user.id } } });
    const mutation = await fetch(`${t.url}/graphql?query=${encodeURIComponent('mutation { logout }')}`, {
      headers: { authorization: `Bearer ${user.accessToken}`, accept: 'application/json' },
    });
    expect(mutation.status).toBe(405);
    // The session survived the refused GET.
    expect((await t.gql('{ me { id } }', {}, { token: user.accessToken })).data?.me).toEqual({ id: user.user.id });
  });

  it('serves GraphiQL to browsers in development', async () => {
    const page = await fetch(`${t.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('graphiql');
  });

  it('treats a request without a token as anonymous and a malformed header as UNAUTHENTICATED', async () => {
    expect((await t.gql('{ me { id } }')).data).toEqual({ me: null });
    const bad = await t.gql('{ me { id } }', {}, { headers: { authorization: 'Token abc' } });
    expect(errorCode(bad)).toBe('UNAUTHENTICATED');
    expect(bad.data ?? null).toBeNull();
  });

  it('runs operations over graphql-ws with the token from connection_init', async () => {
    const user = await registerUser(t.gql);
    const client = createClient({
      url: `${t.url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${user.accessToken}` },
      retryAttempts: 0,
    });
    try {
      const result = await client.iterate({ query: '{ me { id email } }' }).next();
      expect(result.value).toEqual({ data: { me: { id: user.user.id, email: user.user.email } } });
    } finally {
      await client.dispose();
    }
  });

  it('closes a WebSocket whose connection_init carries an invalid token with 4403', async () => {
    const closed = new Promise<number>((resolve) => {
      const client = createClient({
        url: `${t.url.replace('http', 'ws')}/graphql`,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: 'Bearer not.a.token' },
        retryAttempts: 0,
        lazy: false,
        on: { closed: (event) => resolve((event as CloseEvent).code) },
        onNonLazyError: () => {},
      });
      void client;
    });
    expect(await closed).toBe(4403);
  });

  it('answers over server-sent events too', async () => {
    const response = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: '{ me { id } }' }),
    });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    expect(await response.text()).toContain('"data":{"me":null}');
  });
});

describe('unexpected failures', () => {
  it.skipIf(!serviceAvailable('mariadbd'))(
    'masks an internal error as INTERNAL_SERVER_ERROR with no detail, and /readyz reports the database down',
    async () => {
      const mariadb = await startMariaDb();
      const t = await startTestApp({ databaseUrl: await createDatabase(mariadb, 'outage') });
      try {
        const user = await registerUser(t.gql);
        await mariadb.stop();
        const ready = await fetch(`${t.url}/readyz`);
        expect(ready.status).toBe(503);
        expect(await ready.json()).toMatchObject({ status: 'down', down: ['database'] });
        const result = await t.gql('mutation($input: LoginInput!) { login(input: $input) { accessToken } }', {
          input: { email: user.user.email, password: user.password },
        });
        expect(result.errors).toHaveLength(1);
        expect(result.errors?.[0]).toMatchObject({
          message: 'Unexpected error.',
          extensions: { code: 'INTERNAL_SERVER_ERROR' },
        });
        expect(JSON.stringify(result)).not.toMatch(/select|mysql|ECONNREFUSED|stack|\.ts:/i);
      } finally {
        await t.close().catch(() => {});
        await mariadb.stop();
      }
    },
  );
});

describe('production mode', () => {
  it('does not serve GraphiQL unless GRAPHIQL=true', async () => {
    const key = ed25519Pem();
    const production = {
      NODE_ENV: 'production',
      JWT_PRIVATE_KEY: key,
      SMTP_URL: 'smtp://127.0.0.1:2525',
      MAIL_FROM: 'no-reply@auth.test',
    };
    const off = await startTestApp({ env: production });
    const on = await startTestApp({ env: { ...production, GRAPHIQL: 'true' } });
    try {
      const offPage = await fetch(`${off.url}/graphql`, { headers: { accept: 'text/html' } });
      expect(await offPage.text()).not.toContain('graphiql');
      const onPage = await fetch(`${on.url}/graphql`, { headers: { accept: 'text/html' } });
      expect(await onPage.text()).toContain('graphiql');
    } finally {
      await off.close();
      await on.close();
    }
  });
});
