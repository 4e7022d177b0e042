// Property-based fuzzing of the HTTP surface: thousands of malformed bodies, documents, variables, content types
// and headers. None may produce a 5xx, an unknown error code or a leak of internals, and the server stays up.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../src/errors.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { registerUser } from './support/graphql.ts';

/** Codes of API.md, and those graphql-yoga gives requests it refuses before execution. */
const KNOWN_CODES = new Set<string>([
  ...ERROR_CODES,
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_REQUEST',
  'OPERATION_RESOLUTION_FAILURE',
]);
const LEAK = /\bat [^\n]*:\d+:\d+|node_modules|\/work\/|\.ts:\d+|sqlite|mysql|select .* from|insert into|-----BEGIN/i;

const WORDS = [
  '{',
  '}',
  '(',
  ')',
  '[',
  ']',
  ':',
  '!',
  '$',
  '...',
  '@',
  '=',
  ',',
  '"',
  '"""',
  '#',
  'query',
  'mutation',
  'subscription',
  'fragment',
  'on',
  'me',
  'id',
  'email',
  'sessions',
  'login',
  'register',
  'refresh',
  'input',
  'password',
  'users',
  'user',
  'first',
  'after',
  'auditEvents',
  'edges',
  'node',
  '__schema',
  '__type',
  '__typename',
  'myData',
  'logout',
  'changePassword',
  'verifyEmail',
  'resetPassword',
  'deleteAccount',
  'setUserRoles',
  'roles',
  'ADMIN',
  'true',
  'null',
  '1e309',
  '-0',
  '"x"',
  '$v',
  'String!',
  'Int',
  'LoginInput',
  '@include(if: true)',
  '@skip(if: $v)',
  'a:',
  'b:',
  '\\u0000',
  '\u202e',
  '😀',
];

/** Documents built from GraphQL-ish words: mostly invalid, sometimes valid, often nearly valid. */
const documentArb = fc.oneof(
  fc.array(fc.constantFrom(...WORDS), { maxLength: 60 }).map((words) => words.join(' ')),
  fc.string({ maxLength: 300 }),
  fc.constantFrom(
    '{ me { id email } }',
    'mutation($input: LoginInput!) { login(input: $input) { accessToken } }',
    'mutation($t: String!) { refresh(refreshToken: $t) { accessToken } }',
    'query($first: Int, $after: String) { users(first: $first, after: $after) { totalCount } }',
    'mutation($input: RegisterInput!) { register(input: $input) { user { id } } }',
    'query($id: ID!) { user(id: $id) { id } }',
    'mutation($code: String!) { verifyEmail(code: $code) { id } }',
  ),
  fc.nat({ max: 40 }).map((depth) => `{ ${'me { '.repeat(depth)}id${' }'.repeat(depth)} }`),
);

const nastyKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'input', 'email', 'password', 't', 'v', '');
const nastyValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.jsonValue({ maxDepth: 3 }),
    fc.constantFrom('x'.repeat(100_000), '\u0000', '1e309', -0, Number.MAX_SAFE_INTEGER, 'a@b.co'),
    fc.dictionary(nastyKey, tie('value'), { maxKeys: 4 }),
    fc.array(tie('value'), { maxLength: 4 }),
  ),
})).value;
const variablesArb = fc.oneof(
  fc.constant(undefined),
  fc.dictionary(nastyKey, nastyValue, { maxKeys: 5 }),
  fc.jsonValue({ maxDepth: 2 }),
  fc.nat({ max: 2000 }).map((depth) => JSON.parse(`${'{"input":'.repeat(depth)}1${'}'.repeat(depth)}`)),
);

const contentTypeArb = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'application/graphql-response+json',
  'application/graphql',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  'application/json; charset=latin1',
  'garbage/type',
  '',
);
/** Printable ASCII: what a header value may carry. */
const headerValueArb = fc.oneof(
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 200 }),
  fc.constantFrom('Bearer ', 'Bearer a.b.c', 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.', 'Basic Zm9vOmJhcg=='),
  fc.nat({ max: 12_000 }).map((n) => `Bearer ${'A'.repeat(n)}`),
);

interface Outcome {
  status: number;
  text: string;
}

function check({ status, text }: Outcome) {
  expect(status, text.slice(0, 300)).toBeLessThan(500);
  expect(text).not.toMatch(LEAK);
  let body: { errors?: { message?: unknown; extensions?: { code?: unknown } }[] } | undefined;
  try {
    body = JSON.parse(text);
  } catch {
    return; // Not JSON (an empty 4xx, an SSE stream): nothing more to check.
  }
  for (const error of body?.errors ?? []) {
    const code = error.extensions?.code;
    if (code !== undefined) expect(KNOWN_CODES, JSON.stringify(error)).toContain(code);
    expect(code).not.toBe('INTERNAL_SERVER_ERROR');
  }
}

describe('fuzzing the HTTP surface', () => {
  let t: TestApp;
  let token: string;
  beforeAll(async () => {
    t = await startTestApp();
    token = (await registerUser(t.gql)).accessToken;
  });
  afterAll(() => t?.close());

  const send = async (init: RequestInit & { path?: string }): Promise<Outcome> => {
    const response = await fetch(`${t.url}${init.path ?? '/graphql'}`, init);
    return { status: response.status, text: await response.text() };
  };

  it('answers malformed documents and variables with GraphQL errors, never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        documentArb,
        variablesArb,
        fc.option(fc.string({ maxLength: 20 })),
        fc.boolean(),
        async (query, variables, operationName, signedIn) => {
          check(
            await send({
              method: 'POST',
              headers: {
                'content-type': 'application/json',
                accept: 'application/graphql-response+json, application/json',
                ...(signedIn ? { authorization: `Bearer ${token}` } : {}),
              },
              body: JSON.stringify({ query, variables, operationName }),
            }),
          );
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('answers raw bodies, content types, methods and headers it cannot use with 4xx', async () => {
    const bodyArb = fc.oneof(
      fc.string({ maxLength: 500 }),
      fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.stringify(value)),
      fc.constantFrom(
        '{"query":',
        '[{"query":"{ me { id } }"}]',
        '{"__proto__":{"query":"{ me { id } }"}}',
        'null',
        '[]',
        '{}',
      ),
      fc.nat({ max: 5000 }).map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('POST', 'POST', 'POST', 'GET', 'PUT', 'DELETE', 'PATCH'),
        bodyArb,
        contentTypeArb,
        headerValueArb,
        headerValueArb,
        fc.constantFrom(
          '/graphql',
          '/graphql/',
          '/healthz',
          '/readyz',
          '/.well-known/jwks.json',
          '/%00',
          '/graphql?query=%7B',
        ),
        async (method, body, contentType, authorization, requestId, path) => {
          const hasBody = method !== 'GET';
          const headers: Record<string, string> = { authorization, 'x-request-id': requestId };
          if (contentType) headers['content-type'] = contentType;
          check(await send({ method, path, headers, ...(hasBody ? { body } : {}) }));
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('answers GET queries with garbage parameters', async () => {
    await fc.assert(
      fc.asyncProperty(
        documentArb,
        fc.string({ maxLength: 200 }),
        fc.string({ maxLength: 50 }),
        async (query, variables, extensions) => {
          const params = new URLSearchParams({ query, variables, extensions });
          check(
            await send({
              method: 'GET',
              path: `/graphql?${params}`,
              headers: { accept: 'application/json', 'x-graphql-yoga-csrf': '1' },
            }),
          );
        },
      ),
      { numRuns: 800 },
    );
  });

  it('is still up and serving afterwards', async () => {
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    expect((await t.gql('{ me { id } }', {}, { token })).data?.me?.id).toBeTruthy();
  });
});
