// The one size limit on a request body (WS_MAX_MESSAGE_BYTES, 1 MiB by default) over HTTP, whichever way the body
// comes: with a Content-Length, or chunked with none (then counted as it arrives), JSON or a form; and GET /readyz
// answered at that path only.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';

const LIMIT = 1024 * 1024;

/** POSTs `chunks` to /graphql with Transfer-Encoding: chunked (no Content-Length); the status and body. */
function postChunked(baseUrl: string, contentType: string, chunks: string[]) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(
      `${baseUrl}/graphql`,
      {
        method: 'POST',
        headers: { 'content-type': contentType, 'transfer-encoding': 'chunked', 'x-graphql-yoga-csrf': '1' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    // The server may answer (413) and close before every chunk is written.
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' ? undefined : reject(error)));
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

/** A JSON request body of about `bytes` bytes, split into 64 KiB chunks. */
function jsonChunks(bytes: number): string[] {
  const body = JSON.stringify({ query: '{ __typename }', variables: { pad: 'x'.repeat(bytes) } });
  return Array.from({ length: Math.ceil(body.length / 65_536) }, (_, i) => body.slice(i * 65_536, (i + 1) * 65_536));
}

describe('the request body limit over HTTP', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  it('answers a chunked JSON body within the limit', async () => {
    const answer = await postChunked(t.url, 'application/json', jsonChunks(LIMIT - 1024));
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ data: { __typename: 'Query' } });
  });

  it('refuses a chunked JSON body over the limit with 413, though no Content-Length announced it', async () => {
    const answer = await postChunked(t.url, 'application/json', jsonChunks(LIMIT + 1024));
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).errors[0].extensions.code).toBe('REQUEST_ENTITY_TOO_LARGE');
  });

  it('refuses a chunked form body over the limit with 413', async () => {
    const form = `query=${encodeURIComponent('{ __typename }')}&pad=${'x'.repeat(LIMIT + 1024)}`;
    const answer = await postChunked(t.url, 'application/x-www-form-urlencoded', [form]);
    expect(answer.status).toBe(413);
  });

  it('refuses a JSON body whose Content-Length is over the limit with 413 before reading it', async () => {
    const response = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }', variables: { pad: 'x'.repeat(LIMIT) } }),
    });
    expect(response.status).toBe(413);
  });

  it('answers readiness at /readyz only, not at a path or query that merely ends with it', async () => {
    const ready = await fetch(`${t.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ok' });
    const elsewhere = await fetch(`${t.url}/graphql?query=${encodeURIComponent('{ __typename }')}&x=/readyz`, {
      headers: { 'x-graphql-yoga-csrf': '1' },
    });
    expect(await elsewhere.json()).toEqual({ data: { __typename: 'Query' } });
    expect((await fetch(`${t.url}/other/readyz`)).status).toBe(404);
  });
});
