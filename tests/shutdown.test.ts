// SIGTERM on a real process (src/main.ts) with an SSE subscription, a WebSocket and a request in flight: the
// WebSocket closes with 1001, the SSE response ends cleanly, the in-flight request is answered, new connections
// are refused, and the process exits 0. A second signal exits at once.

import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ed25519Pem } from './support/expect.ts';
import { graphqlClient, registerUser } from './support/graphql.ts';
import { type ServiceProcess, startServiceProcess } from './support/processes.ts';
import { openClient, subscribe } from './support/subscriptions.ts';

const SUBSCRIPTION = 'subscription { sessionRevoked { sessionId reason } }';

const exited = (service: ServiceProcess) =>
  new Promise<number | null>((resolve) => {
    if (service.child.exitCode !== null) resolve(service.child.exitCode);
    else service.child.once('exit', (code) => resolve(code));
  });

/**
 * A POST whose body is sent in two parts: until `finish` is called the request is in flight on the server (its
 * handler is waiting for the body). Resolves `response` with the status and body, or rejects if the connection
 * is cut.
 */
function slowRequest(baseUrl: string) {
  const body = JSON.stringify({ query: '{ __typename }' });
  const half = Math.floor(body.length / 2);
  let started: () => void = () => {};
  const headersSent = new Promise<void>((resolve) => {
    started = resolve;
  });
  let req: ReturnType<typeof request> | undefined;
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req = request(
      `${baseUrl}/graphql`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.write(body.slice(0, half), () => started());
  });
  return {
    response,
    headersSent,
    finish: () => req?.end(body.slice(half)),
  };
}

/** An SSE subscription over POST; `outcome` says whether its response ended cleanly, and what it carried. */
async function sseSubscription(baseUrl: string, token: string) {
  const response = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: SUBSCRIPTION }),
  });
  expect([response.status, response.headers.get('content-type')]).toEqual([200, 'text/event-stream']);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  let text = '';
  const outcome = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return { ended: 'cleanly', text };
        text += new TextDecoder().decode(value);
      }
    } catch (error) {
      // A reset connection ("terminated", ECONNRESET) lands here.
      return { ended: `with an error: ${(error as Error).message}`, text };
    }
  })();
  return { outcome, received: () => text };
}

describe('shutdown of a real process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-shutdown-'));
  const env = {
    DATABASE_URL: `sqlite:${join(dir, 'auth.sqlite')}`,
    JWT_PRIVATE_KEY: ed25519Pem(),
    BCRYPT_COST: '4',
    DATA_DIR: dir,
    ISSUER: 'https://auth.test',
    AUDIENCE: 'https://api.test',
  };
  const services: ServiceProcess[] = [];
  afterAll(async () => {
    for (const service of services) if (service.child.exitCode === null) service.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('SIGTERM: WebSocket 1001, SSE ended cleanly, the in-flight request answered, exit 0', async () => {
    const service = await startServiceProcess(env);
    services.push(service);
    const user = await registerUser(graphqlClient(service.url));

    const ws = subscribe(service.url, SUBSCRIPTION, user.accessToken);
    const sse = await sseSubscription(service.url, user.accessToken);
    const inFlight = slowRequest(service.url);
    await inFlight.headersSent;
    // Let the WebSocket finish its handshake and subscribe (what is checked below is awaited, not timed).
    await new Promise((resolve) => setTimeout(resolve, 300));
    const exit = exited(service);

    service.child.kill('SIGTERM');
    expect(await ws.closed).toBe(1001);
    const sseOutcome = await sse.outcome;
    expect(sseOutcome.ended).toBe('cleanly');
    // The stream's own end: Yoga's "complete" event, written before the response ends.
    expect(sseOutcome.text).toContain('event: complete');
    // No new connection is accepted meanwhile, while the in-flight request still holds the process.
    await expect(fetch(`${service.url}/healthz`)).rejects.toThrow();
    expect(service.child.exitCode).toBe(null);

    inFlight.finish();
    expect(await inFlight.response).toEqual({ status: 200, body: '{"data":{"__typename":"Query"}}' });
    expect(await exit).toBe(0);
    await ws.dispose();
  });

  it('a second signal exits at once, without waiting for the in-flight request', async () => {
    const service = await startServiceProcess(env);
    services.push(service);
    const user = await registerUser(graphqlClient(service.url));
    const socket = openClient(service.url, user.accessToken);
    const inFlight = slowRequest(service.url);
    await inFlight.headersSent;
    await new Promise((resolve) => setTimeout(resolve, 300));
    const exit = exited(service);
    const answer = inFlight.response.then(
      () => 'answered',
      () => 'cut',
    );

    service.child.kill('SIGTERM');
    // Shutdown has begun (sockets closed); the in-flight request would keep the process up to its deadline.
    expect(await socket.closed).toBe(1001);
    expect(service.child.exitCode).toBe(null);
    service.child.kill('SIGINT');
    // 128 + SIGINT: the second signal's exit, not the graceful 0 nor the deadline's 1.
    expect(await exit).toBe(130);
    expect(await answer).toBe('cut');
    await socket.client.dispose();
  });
});
