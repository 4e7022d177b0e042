// Attacks on the hot-path changes of issue 17: the request body limit we enforce ourselves (every way a body can
// come over HTTP, raw sockets where fetch cannot say it) and the input-integrity check whose plan is cached per
// document and operation name (operations switched by name on one document text, fragments, nested inputs), and
// the user cache whose misses are read on the ORM's root EntityManager (which joins a transaction it runs inside).
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Em } from '../src/db/orm.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { me, registerUser } from './support/graphql.ts';
import { type RunningService, serviceAvailable, startRedis } from './support/services.ts';
import { openClient } from './support/subscriptions.ts';

const LIMIT = 1024 * 1024;

/** Writes `parts` to a fresh connection (each after the last was sent); everything read until the server closes. */
function raw(baseUrl: string, parts: (string | Buffer)[]): Promise<string> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const received: Buffer[] = [];
    socket.on('data', (chunk) => received.push(chunk));
    // The server may answer (413) and close while we are still writing.
    socket.on('error', (error: NodeJS.ErrnoException) =>
      error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error),
    );
    socket.on('close', () => resolve(Buffer.concat(received).toString('latin1')));
    socket.on('connect', async () => {
      for (const part of parts) {
        if (socket.destroyed) break;
        await new Promise<void>((done) => socket.write(part, () => done()));
      }
      // No half-close: each exchange's last request asks for `connection: close` (or the parser refuses it).
    });
  });
}

/** The status codes of every response in `text`, in order. */
const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

/** A chunked-encoding frame of `data`. */
const chunk = (data: string | Buffer) => {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  return Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]);
};

const PAD = 'q'.repeat(64 * 1024);

/** The JSON body of the first response in a raw HTTP answer (sized by its content-length, or its first chunk). */
function jsonBody(text: string): any {
  const start = text.indexOf('\r\n\r\n') + 4;
  const length = /content-length: (\d+)\r\n/i.exec(text.slice(0, start));
  if (length) return JSON.parse(text.slice(start, start + Number(length[1])));
  const size = /^([0-9a-f]+)\r\n/i.exec(text.slice(start));
  if (!size) throw new Error('no body');
  const from = start + size[0].length;
  return JSON.parse(text.slice(from, from + Number.parseInt(size[1] ?? '0', 16)));
}

describe('request bodies over the limit never reach a parser', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  const head = (contentType: string, extra = '') =>
    `POST /graphql HTTP/1.1\r\nHost: x\r\ncontent-type: ${contentType}\r\nx-graphql-yoga-csrf: 1\r\n${extra}`;

  it.each([
    ['application/graphql', (): Buffer[] => [chunk(`{ __typename } # ${PAD}`), ...Array(17).fill(chunk(PAD))]],
    [
      'multipart/form-data; boundary=XX',
      (): Buffer[] => [
        chunk(`--XX\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{"query":"{ __typename }"`),
        ...Array(17).fill(chunk(PAD)),
        chunk('}\r\n--XX--\r\n'),
      ],
    ],
    [
      'application/x-www-form-urlencoded',
      (): Buffer[] => [chunk('query=%7B__typename%7D&pad='), ...Array(17).fill(chunk(PAD))],
    ],
  ])('a chunked %s body over the limit is 413 REQUEST_ENTITY_TOO_LARGE and quotes nothing', async (type, body) => {
    const text = await raw(t.url, [
      `${head(type)}transfer-encoding: chunked\r\nconnection: close\r\n\r\n`,
      ...body(),
      '0\r\n\r\n',
    ]);
    expect(statuses(text)[0]).toBe(413);
    expect(jsonBody(text).errors[0].extensions.code).toBe('REQUEST_ENTITY_TOO_LARGE');
    expect(text).not.toContain('qqqq');
  });

  it('a multipart body with a Content-Length over the limit is 413 before it is read', async () => {
    const text = await raw(t.url, [
      `${head('multipart/form-data; boundary=XX')}content-length: ${LIMIT + 1}\r\nconnection: close\r\n\r\n`,
    ]);
    expect(statuses(text)).toEqual([413]);
    expect(jsonBody(text).errors[0].extensions.code).toBe('REQUEST_ENTITY_TOO_LARGE');
  });

  it('Expect: 100-continue with a Content-Length over the limit gets 413 (no body is needed)', async () => {
    const text = await raw(t.url, [
      `${head('application/json')}content-length: ${LIMIT + 1}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n`,
    ]);
    expect(statuses(text).at(-1)).toBe(413);
    expect(jsonBody(text.slice(text.lastIndexOf('HTTP/1.1 '))).errors[0].extensions.code).toBe(
      'REQUEST_ENTITY_TOO_LARGE',
    );
  });

  it('a Content-Length with Transfer-Encoding too is refused by the HTTP parser, nothing executes', async () => {
    const body = '{"query":"mutation { logout }"}';
    const text = await raw(t.url, [
      `${head('application/json')}content-length: ${body.length}\r\ntransfer-encoding: chunked\r\n\r\n`,
      chunk(body),
      '0\r\n\r\n',
    ]);
    expect(statuses(text)).toEqual([400]);
    expect(text).not.toContain('"data"');
  });

  it('a Content-Length lying low on keep-alive: the body ends there, the rest is the next request', async () => {
    const body = JSON.stringify({ query: '{ __typename }' });
    const text = await raw(t.url, [
      `${head('application/json')}content-length: ${body.length}\r\n\r\n${body}` +
        'GET /readyz HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n',
    ]);
    expect(statuses(text)).toEqual([200, 200]);
    expect(jsonBody(text)).toEqual({ data: { __typename: 'Query' } });
    expect(text).toContain('{"status":"ok"}');
  });

  it('a gzip Content-Encoding is not decoded: the body is not JSON (400), whatever it inflates to', async () => {
    const bomb = gzipSync(JSON.stringify({ query: '{ __typename }', variables: { pad: 'q'.repeat(8 * LIMIT) } }));
    const response = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: bomb,
    });
    expect(response.status).toBe(400);
    const answer = await response.text();
    expect(JSON.parse(answer).errors[0].extensions.code).toBe('BAD_REQUEST');
    expect(answer).not.toContain('qqqq');
  });

  it('a GET with a body runs the query of its URL only', async () => {
    const body = JSON.stringify({ query: 'mutation { logout }' });
    const text = await raw(t.url, [
      `GET /graphql?query=%7B__typename%7D HTTP/1.1\r\nHost: x\r\nx-graphql-yoga-csrf: 1\r\n` +
        `content-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
    ]);
    expect(statuses(text)).toEqual([200]);
    expect(jsonBody(text)).toEqual({ data: { __typename: 'Query' } });
  });

  it('the token endpoint refuses a chunked body over its 16 KiB with 413 (an OAuth error)', async () => {
    const text = await raw(t.url, [
      'POST /oauth/token HTTP/1.1\r\nHost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n' +
        'transfer-encoding: chunked\r\nconnection: close\r\n\r\n',
      chunk('grant_type=client_credentials&pad='),
      chunk('q'.repeat(17 * 1024)),
      '0\r\n\r\n',
    ]);
    expect(statuses(text)).toEqual([413]);
    expect(jsonBody(text).error).toBe('invalid_request');
    expect(text).not.toContain('qqqq');
  });

  it('/readyz answers GET and HEAD at its path', async () => {
    expect(await (await fetch(`${t.url}/readyz`)).json()).toEqual({ status: 'ok' });
    const headAnswer = await fetch(`${t.url}/readyz`, { method: 'HEAD' });
    expect(headAnswer.status).toBe(200);
    expect(await headAnswer.text()).toBe('');
  });
});

describe('input integrity with its plan cached per document and operation name', () => {
  let t: TestApp;
  let token: string;
  beforeAll(async () => {
    t = await startTestApp();
    token = (await registerUser(t.gql)).accessToken;
  });
  afterAll(() => t?.close());

  const LONE = 'ab\ud800';
  const refusedDisplayName = {
    code: 'BAD_USER_INPUT',
    field: 'displayName',
    message: 'The value of displayName contains a lone surrogate (not well-formed UTF-16).',
  };
  const firstError = (r: { errors?: { message: string; extensions?: Record<string, unknown> }[] }) => ({
    code: r.errors?.[0]?.extensions?.code,
    field: r.errors?.[0]?.extensions?.field,
    message: r.errors?.[0]?.message,
  });
  /** POSTs one document with `operationName` (JSON, so the text is sent exactly). */
  const send = (query: string, operationName: string | undefined, variables: Record<string, unknown>) =>
    fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, operationName, variables }),
    }).then((r) => r.json() as Promise<{ data?: any; errors?: any[] }>);

  it('switching operationName on one document text checks the operation that runs', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `Q${i}`);
    const document = [
      ...names.map((name) => `query ${name} { me { id } }`),
      'mutation Bad($input: UpdateProfileInput!) { updateProfile(input: $input) { displayName } }',
    ].join('\n');
    const variables = { input: { displayName: LONE } };
    // The cache fills with clean plans (more names than it keeps), then the mutation is named.
    for (const name of names) expect((await send(document, name, variables)).errors).toBeUndefined();
    expect(firstError(await send(document, 'Bad', variables))).toEqual(refusedDisplayName);
    expect(firstError(await send(document, 'Bad', variables))).toEqual(refusedDisplayName);
    const meNow = await send('{ me { displayName } }', undefined, {});
    expect(meNow.data.me.displayName).toBeNull();
  });

  it('over graphql-ws, the operation named in a document HTTP already ran clean is checked', async () => {
    const document = [
      'query Clean { me { id } }',
      'mutation Bad($input: UpdateProfileInput!) { updateProfile(input: $input) { displayName } }',
    ].join('\n');
    const variables = { input: { displayName: LONE } };
    expect((await send(document, 'Clean', variables)).errors).toBeUndefined();
    const { client } = openClient(t.url, token);
    try {
      const answer = await new Promise<{ errors?: any[]; data?: any }>((resolve, reject) => {
        let result: { errors?: any[]; data?: any } = {};
        client.subscribe(
          { query: document, operationName: 'Bad', variables },
          {
            next: (value) => {
              result = value as typeof result;
            },
            error: reject,
            complete: () => resolve(result),
          },
        );
      });
      expect(firstError(answer)).toEqual(refusedDisplayName);
    } finally {
      await client.dispose();
    }
    expect((await send('{ me { displayName } }', undefined, {})).data.me.displayName).toBeNull();
  });

  it('literals in fragments (named, nested, spread twice, inline) are checked', async () => {
    const document = `
      mutation M { ...A ...A }
      fragment A on Mutation { ... on Mutation { ...B } }
      fragment B on Mutation { updateProfile(input: { displayName: "x\\u0000" }) { displayName } }`;
    const answer = await send(document, 'M', {});
    expect(firstError(answer)).toEqual({ ...refusedDisplayName, message: 'The value of displayName contains U+0000.' });
  });

  it('an ID variable: a U+0000 or a non-ID shape after a clean run of the same document', async () => {
    const document = 'mutation R($id: ID!) { revokeSession(id: $id) }';
    const clean = await send(document, undefined, { id: '00000000-0000-4000-8000-000000000000' });
    expect(clean.errors?.[0]?.extensions?.code).not.toBe('BAD_USER_INPUT');
    expect(firstError(await send(document, undefined, { id: 'a\u0000' }))).toEqual({
      code: 'BAD_USER_INPUT',
      field: 'id',
      message: 'The value of id contains U+0000.',
    });
    expect(firstError(await send(document, undefined, { id: 'é' }))).toEqual({
      code: 'BAD_USER_INPUT',
      field: 'id',
      message: 'The value of id is not an id this API issues.',
    });
  });
});

describe.skipIf(!serviceAvailable('redis-server'))(
  'the user cache never keeps a row it read inside a transaction',
  () => {
    describe.each(dialects())('on %s', (dialect) => {
      let redis: RunningService;
      let t: TestApp;
      beforeAll(async () => {
        redis = await startRedis();
        t = await startTestApp({ dialect, env: { REDIS_URL: redis.url } });
      });
      afterAll(async () => {
        await t?.close();
        await redis?.stop();
      });

      it('a miss read inside a transaction that rolls back leaves the committed row for the next read', async () => {
        const user = await registerUser(t.gql, { displayName: 'committed' });
        const rolledBack = new Error('rolled back');
        // The root EntityManager answers a read from inside a transaction's callback on that transaction's
        // connection (MikroORM's TransactionContext): it sees the uncommitted name.
        const seen = await (t.app.orm.em.fork() as Em)
          .transactional(async (tx) => {
            await tx
              .getConnection()
              .execute(
                'update users set display_name = ? where id = ?',
                ['uncommitted', user.user.id],
                'run',
                tx.getTransactionContext(),
              );
            const rows = await t.app.services.users.findByIds([user.user.id]);
            throw Object.assign(rolledBack, { rows });
          })
          .catch((error: unknown) =>
            error === rolledBack ? (error as Error & { rows: { displayName: string }[] }).rows : [],
          );
        expect(seen.map((row) => row.displayName)).toEqual(['uncommitted']);
        const after = await me<{ displayName: string | null }>(t.gql, user.accessToken, 'displayName');
        expect(after.data?.me?.displayName).toBe('committed');
      });
    });
  },
);
