// WebSocket caps: operations at once per socket, message size, connection_init deadline, and a malformed
// authorization in connection_init; with real sockets (ws) and the real graphql-ws client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startTestApp, type TestApp } from './support/app.ts';
import { registerUser } from './support/graphql.ts';
import { openClient, wsUrl } from './support/subscriptions.ts';

type Message = { type: string; id?: string; payload?: any };

/** A raw graphql-transport-ws socket: what it received, and how it closed. */
function rawSocket(baseUrl: string) {
  const socket = new WebSocket(wsUrl(baseUrl), 'graphql-transport-ws');
  const received: Message[] = [];
  const waiters: (() => void)[] = [];
  socket.on('message', (data) => {
    received.push(JSON.parse(String(data)) as Message);
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
  const opened = new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return {
    socket,
    received,
    closed,
    opened,
    send: (message: Message) => socket.send(JSON.stringify(message)),
    async until(check: () => boolean, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out; received ${JSON.stringify(received.slice(-3))}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
    },
  };
}

async function acknowledged(baseUrl: string, payload: Record<string, unknown> = {}) {
  const raw = rawSocket(baseUrl);
  await raw.opened;
  raw.send({ type: 'connection_init', payload });
  await raw.until(() => raw.received.some((m) => m.type === 'connection_ack'));
  return raw;
}

const SESSION_REVOKED = 'subscription { sessionRevoked { sessionId reason } }';

describe('WebSocket limits (defaults)', () => {
  let t: TestApp;
  let token: string;
  beforeAll(async () => {
    t = await startTestApp({ env: { WS_CONNECTION_INIT_TIMEOUT: '500ms' } });
    token = (await registerUser(t.gql)).accessToken;
  });
  afterAll(() => t?.close());

  it('runs at most 100 operations at once on one socket: a burst of 150 gets 100, the rest an error message', async () => {
    const raw = await acknowledged(t.url, { authorization: `Bearer ${token}` });
    for (let i = 0; i < 150; i++) raw.send({ id: `s${i}`, type: 'subscribe', payload: { query: SESSION_REVOKED } });
    await raw.until(() => raw.received.filter((m) => m.type === 'error').length >= 50);
    // Give any operation that was wrongly admitted time to answer too.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const errors = raw.received.filter((m) => m.type === 'error');
    expect(errors).toHaveLength(50);
    expect(errors[0]?.payload).toEqual([
      {
        message: 'Too many operations on this WebSocket: at most 100 at once',
        extensions: { code: 'RATE_LIMITED' },
      },
    ]);
    // A completed operation frees its place, for a new one.
    raw.send({ id: 's0', type: 'complete' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    raw.send({ id: 'again', type: 'subscribe', payload: { query: SESSION_REVOKED } });
    raw.send({ id: 'over', type: 'subscribe', payload: { query: SESSION_REVOKED } });
    await raw.until(() => raw.received.some((m) => m.id === 'over'));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(raw.received.filter((m) => m.id === 'again')).toEqual([]);
    expect(raw.received.find((m) => m.id === 'over')?.type).toBe('error');
    raw.socket.close();
  });

  it('refuses the 101st operation through the graphql-ws client', async () => {
    const { client } = openClient(t.url, token);
    const outcomes: string[] = [];
    const record = (outcome: string) => outcomes.push(outcome);
    const disposers: (() => void)[] = [];
    for (let i = 0; i < 100; i++) {
      disposers.push(
        client.subscribe(
          { query: SESSION_REVOKED },
          { next: () => {}, error: () => record('error'), complete: () => {} },
        ),
      );
    }
    let refused: unknown;
    await new Promise<void>((resolve) => {
      client.subscribe(
        { query: SESSION_REVOKED },
        {
          next: () => {},
          error: (error) => {
            refused = error;
            resolve();
          },
          complete: () => resolve(),
        },
      );
    });
    expect(refused).toEqual([
      { message: 'Too many operations on this WebSocket: at most 100 at once', extensions: { code: 'RATE_LIMITED' } },
    ]);
    expect(outcomes).toEqual([]);
    for (const dispose of disposers) dispose();
    await client.dispose();
  });

  it('frees the place of every operation the client completes, however early', async () => {
    const raw = await acknowledged(t.url, { authorization: `Bearer ${token}` });
    for (let i = 0; i < 100; i++) raw.send({ id: `s${i}`, type: 'subscribe', payload: { query: SESSION_REVOKED } });
    for (let i = 0; i < 100; i++) raw.send({ id: `s${i}`, type: 'complete' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    raw.send({ id: 'q', type: 'subscribe', payload: { query: '{ __typename }' } });
    await raw.until(() => raw.received.some((m) => m.id === 'q' && m.type === 'complete'));
    expect(raw.received.find((m) => m.id === 'q' && m.type === 'next')?.payload).toEqual({
      data: { __typename: 'Query' },
    });
    raw.socket.close();
  });

  it('closes the socket with 1009 on a message over 1 MiB, even before connection_init', async () => {
    const raw = rawSocket(t.url);
    await raw.opened;
    raw.socket.send(JSON.stringify({ type: 'connection_init', payload: { pad: 'x'.repeat(1024 * 1024) } }));
    expect(await raw.closed).toBe(1009);
  });

  it('accepts a message just under 1 MiB', async () => {
    const raw = rawSocket(t.url);
    await raw.opened;
    const message = JSON.stringify({ type: 'connection_init', payload: { pad: '' } });
    raw.socket.send(
      JSON.stringify({ type: 'connection_init', payload: { pad: 'x'.repeat(1024 * 1024 - message.length) } }),
    );
    await raw.until(() => raw.received.some((m) => m.type === 'connection_ack'));
    raw.socket.close();
  });

  it('refuses an HTTP request body over the same 1 MiB with 413', async () => {
    const response = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }', variables: { pad: 'x'.repeat(1024 * 1024) } }),
    });
    expect(response.status).toBe(413);
  });

  it('closes a socket that sends no connection_init in time with 4408', async () => {
    const raw = rawSocket(t.url);
    await raw.opened;
    expect(await raw.closed).toBe(4408);
  });

  it.each([
    ['a number', 12345],
    ['an object', { token: 'Bearer x' }],
    ['an array', ['Bearer x']],
    ['null', null],
    ['true', true],
  ])('closes with 4403 when connection_init authorization is %s', async (_, authorization) => {
    const raw = rawSocket(t.url);
    await raw.opened;
    raw.send({ type: 'connection_init', payload: { authorization } });
    expect(await raw.closed).toBe(4403);
    expect(raw.received).toEqual([]);
  });

  it('closes the graphql-ws client with 4403 for a non-string authorization, and acknowledges a missing one', async () => {
    const { client, closed } = openClient(t.url);
    await client.dispose();
    expect(await closed).toBe(1000);
    const raw = rawSocket(t.url);
    await raw.opened;
    raw.send({ type: 'connection_init', payload: { authorization: { bearer: token } } });
    expect(await raw.closed).toBe(4403);
  });
});

describe('WebSocket limits (configured)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { WS_MAX_OPERATIONS: '2', WS_MAX_MESSAGE_BYTES: '2048' } });
  });
  afterAll(() => t?.close());

  it('counts the operations of one session across all its sockets, and of an operation that brings its own token', async () => {
    const token = (await registerUser(t.gql)).accessToken;
    // Three sockets of one token, and one anonymous socket whose operations carry the same token (as GraphiQL's).
    const sockets = [
      await acknowledged(t.url, { authorization: `Bearer ${token}` }),
      await acknowledged(t.url, { authorization: `Bearer ${token}` }),
      await acknowledged(t.url, { authorization: `Bearer ${token}` }),
      await acknowledged(t.url),
    ];
    const headers = { headers: { authorization: `Bearer ${token}` } };
    for (const [n, raw] of sockets.entries()) {
      raw.send({ id: `s${n}`, type: 'subscribe', payload: { query: SESSION_REVOKED, extensions: headers } });
    }
    const errorsSeen = () => sockets.flatMap((raw) => raw.received.filter((m) => m.type === 'error')).length;
    await (sockets[0] as (typeof sockets)[number]).until(() => errorsSeen() >= 2);
    // Give any operation that was wrongly admitted or refused time to answer too.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const refused = sockets.flatMap((raw) => raw.received.filter((m) => m.type === 'error'));
    // WS_MAX_OPERATIONS is 2 here: two of the four run, each of the other two gets the session's refusal.
    expect(refused.map((m) => m.payload)).toEqual([
      [{ message: 'Too many operations on this session: at most 2 at once', extensions: { code: 'RATE_LIMITED' } }],
      [{ message: 'Too many operations on this session: at most 2 at once', extensions: { code: 'RATE_LIMITED' } }],
    ]);
    // Ending one frees the session's place for an operation on any socket.
    const running = sockets.find((raw) => !raw.received.some((m) => m.type === 'error')) ?? sockets[0];
    running?.socket.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const last = sockets[3] as (typeof sockets)[number];
    last.send({ id: 'again', type: 'subscribe', payload: { query: SESSION_REVOKED, extensions: headers } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(last.received.filter((m) => m.id === 'again')).toEqual([]);
    for (const raw of sockets) raw.socket.close();
  });

  it('applies WS_MAX_OPERATIONS and WS_MAX_MESSAGE_BYTES', async () => {
    const token = (await registerUser(t.gql)).accessToken;
    const raw = await acknowledged(t.url, { authorization: `Bearer ${token}` });
    for (let i = 0; i < 3; i++) raw.send({ id: `s${i}`, type: 'subscribe', payload: { query: SESSION_REVOKED } });
    await raw.until(() => raw.received.some((m) => m.type === 'error'));
    expect(raw.received.filter((m) => m.type === 'error').map((m) => m.id)).toEqual(['s2']);
    raw.socket.send(
      JSON.stringify({ id: 'big', type: 'subscribe', payload: { query: `{ __typename }${' '.repeat(2048)}` } }),
    );
    expect(await raw.closed).toBe(1009);
  });
});
