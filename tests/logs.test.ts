import { Writable } from 'node:stream';
import {
  GraphQLEnumType,
  GraphQLInputObjectType,
  type GraphQLInputType,
  GraphQLList,
  getNamedType,
  isLeafType,
  isNonNullType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { createLogger } from '../src/log.ts';
import { buildSchema } from '../src/schema/index.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { ed25519Pem } from './support/expect.ts';
import { errorCode, type Gql, graphqlClient, PAYLOAD, type Payload, uniqueEmail } from './support/graphql.ts';
import { openClient, wsUrl } from './support/subscriptions.ts';

/** Argument and input field names that hold a secret. */
const SECRET_NAME = /password|token|code|secret|state|recovery/i;

/** A valid value of an input type, for the fields around the one under test. */
function sample(type: GraphQLInputType): unknown {
  const inner = isNonNullType(type) ? type.ofType : type;
  if (inner instanceof GraphQLList) return [sample(inner.ofType)];
  if (inner instanceof GraphQLEnumType) return inner.getValues()[0]?.value;
  if (inner instanceof GraphQLInputObjectType) {
    return Object.fromEntries(
      Object.values(inner.getFields())
        .filter((field) => isNonNullType(field.type))
        .map((field) => [field.name, sample(field.type)]),
    );
  }
  const name = getNamedType(inner).name;
  if (name === 'Boolean') return true;
  if (name === 'Int' || name === 'Float') return 1;
  return 'someone@example.com';
}

/** Every mutation argument, or field of an input argument, whose name says it holds a secret. */
function secretArguments() {
  const mutation = buildSchema().getMutationType();
  const found: { mutation: string; arg: string; argType: GraphQLInputType; field?: string }[] = [];
  for (const definition of Object.values(mutation?.getFields() ?? {})) {
    for (const arg of definition.args) {
      const named = getNamedType(arg.type);
      if (named instanceof GraphQLInputObjectType) {
        for (const inputField of Object.values(named.getFields())) {
          if (SECRET_NAME.test(inputField.name) && getNamedType(inputField.type).name === 'String') {
            found.push({ mutation: definition.name, arg: arg.name, argType: arg.type, field: inputField.name });
          }
        }
      } else if (SECRET_NAME.test(arg.name) && named.name === 'String') {
        found.push({ mutation: definition.name, arg: arg.name, argType: arg.type });
      }
    }
  }
  return found;
}

const privateKey = ed25519Pem();

describe('logs', () => {
  let t: TestApp;
  let gql: Gql;
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const entries = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);

  beforeAll(async () => {
    t = await startTestApp({
      logger: createLogger({ logLevel: 'trace' }, stream),
      env: { LOG_LEVEL: 'trace', JWT_PRIVATE_KEY: privateKey, RATE_LIMIT_LOGIN_ACCOUNT: '2/15m' },
    });
    gql = graphqlClient(t.url);
  });
  afterAll(() => t?.close());

  it('holds no password, token, code or key of a full flow, at trace level', async () => {
    const secrets: string[] = [];
    const codes = t.app.services.codes;
    const issue = codes.issue.bind(codes);
    vi.spyOn(codes, 'issue').mockImplementation(async (...args) => {
      const code = await issue(...args);
      secrets.push(code);
      return code;
    });
    const keep = (payload: Payload | undefined) => {
      if (!payload) throw new Error('expected a payload');
      const [, , refreshSecret, refreshTag] = payload.refreshToken.split('.');
      const [, , signature] = payload.accessToken.split('.');
      secrets.push(
        payload.accessToken,
        signature as string,
        payload.refreshToken,
        refreshSecret as string,
        refreshTag as string,
      );
      return payload;
    };
    const email = uniqueEmail('logs');
    const passwords = ['first password 1', 'second password 2', 'wrong guess 3', 'wrong guess 4', 'third password 5'];
    secrets.push(...passwords);

    const registered = keep(
      (
        await gql<{ register: Payload }>(
          `mutation Register($input: RegisterInput!) { register(input: $input) { ${PAYLOAD} } }`,
          { input: { email, password: passwords[0] } },
        )
      ).data?.register,
    );
    const loggedIn = keep(
      (
        await gql<{ login: Payload }>(
          `mutation Login($input: LoginInput!) { login(input: $input) { ${PAYLOAD} } }`,
          { input: { email, password: passwords[0] } },
          { headers: { cookie: 'session=cookie-secret-value' } },
        )
      ).data?.login,
    );
    secrets.push('cookie-secret-value');
    const refreshed = keep(
      (
        await gql<{ refresh: Payload }>(
          `mutation Refresh($t: String!) { refresh(refreshToken: $t) { ${PAYLOAD} } }`,
          { t: loggedIn.refreshToken },
          { token: loggedIn.accessToken },
        )
      ).data?.refresh,
    );
    keep(
      (
        await gql<{ changePassword: Payload }>(
          `mutation Change($input: ChangePasswordInput!) { changePassword(input: $input) { ${PAYLOAD} } }`,
          { input: { currentPassword: passwords[0], newPassword: passwords[1] } },
          { token: refreshed.accessToken },
        )
      ).data?.changePassword,
    );
    // A query over GET carries its variables in the URL.
    await fetch(
      `${t.url}/graphql?query=${encodeURIComponent('query Me($x: String) { me { id } }')}&variables=${encodeURIComponent(JSON.stringify({ x: passwords[0] }))}`,
      { headers: { authorization: `Bearer ${registered.accessToken}`, accept: 'application/json' } },
    );
    expect(await gql(`mutation { requestPasswordReset(email: "${email}") }`)).toMatchObject({
      data: { requestPasswordReset: true },
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(secrets.length).toBeGreaterThan(20);
    const code = secrets.at(-1) as string;
    const reset = await gql('mutation($input: ResetPasswordInput!) { resetPassword(input: $input) }', {
      input: { email, code, newPassword: passwords[4] },
    });
    expect(reset.data).toEqual({ resetPassword: true });
    const login = (password: string) =>
      gql(`mutation Login($input: LoginInput!) { login(input: $input) { accessToken } }`, {
        input: { email, password },
      });
    expect(errorCode(await login(passwords[2] as string))).toBe('INVALID_CREDENTIALS');
    expect(errorCode(await login(passwords[3] as string))).toBe('INVALID_CREDENTIALS');
    expect(errorCode(await login(passwords[4] as string))).toBe('RATE_LIMITED');
    // An unexpected error: a real SQL failure, with a request id the client can quote.
    await t.app.orm.em.getConnection().execute('drop table audit_events');
    const failing = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'support-ticket-42' },
      body: JSON.stringify({
        query: 'mutation Login($input: LoginInput!) { login(input: $input) { accessToken } }',
        variables: { input: { email: uniqueEmail(), password: passwords[3] } },
      }),
    });
    expect(failing.headers.get('x-request-id')).toBe('support-ticket-42');
    const body = await failing.text();
    expect(JSON.parse(body).errors[0]).toMatchObject({
      message: 'Unexpected error.',
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
    expect(body).not.toMatch(/audit_events|insert|sqlite|stack|\.ts:/i);

    // Keys: the PEM body and the private JWK's `d`, as the key store holds them.
    const pem = privateKey.split('\n').filter((line) => line && !line.startsWith('-----'));
    secrets.push(...pem);

    const output = lines.join('\n');
    expect(lines.length).toBeGreaterThan(10);
    for (const secret of secrets) expect(output, `a secret (${secret.slice(0, 4)}…) was logged`).not.toContain(secret);

    const unexpected = entries().find((entry) => entry.msg === 'unexpected error');
    expect(unexpected?.requestId).toBe('support-ticket-42');
    expect(JSON.stringify(unexpected)).toContain('audit_events');
  });

  it('logs one line per request with its id, method, path, operation, status and duration', async () => {
    lines.length = 0;
    const response = await fetch(`${t.url}/graphql?token=in-the-query-string`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer not-a-token' },
      body: JSON.stringify({ query: 'query Who { __typename }' }),
    });
    await response.text();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const requestLines = entries().filter((entry) => entry.msg === 'request');
    expect(requestLines).toHaveLength(1);
    expect(requestLines[0]).toMatchObject({
      level: 30,
      requestId: response.headers.get('x-request-id'),
      method: 'POST',
      path: '/graphql',
      status: response.status,
    });
    expect(typeof requestLines[0]?.durationMs).toBe('number');
    expect(lines.join('\n')).not.toContain('not-a-token');
    expect(lines.join('\n')).not.toContain('in-the-query-string');
    lines.length = 0;
    await gql('query Who { __typename }');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(entries().find((entry) => entry.msg === 'request')).toMatchObject({ operationName: 'Who', status: 200 });
  });

  it('names an operation on its request line by name and type, and an anonymous one by its type', async () => {
    lines.length = 0;
    await gql('query Who { __typename }');
    await gql('{ __typename }');
    await gql('mutation { logout }');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const requestLines = entries().filter((entry) => entry.msg === 'request');
    expect(requestLines.map((entry) => [entry.operationName, entry.operationType])).toEqual([
      ['Who', 'query'],
      [undefined, 'query'],
      [undefined, 'mutation'],
    ]);
  });

  it('gives each WebSocket operation its own request id, the socket id beside it, and one access line', async () => {
    lines.length = 0;
    const { client } = openClient(t.url);
    try {
      const run = (query: string) =>
        new Promise<unknown[]>((resolve) => {
          const results: unknown[] = [];
          client.subscribe(
            { query },
            {
              next: (value) => void results.push(value),
              error: (error) => resolve([...results, error]),
              complete: () => resolve(results),
            },
          );
        });
      expect(await run('query OverSocket { __typename }')).toEqual([{ data: { __typename: 'Query' } }]);
      // Refused when the subscription starts (scope-auth's authorizeOnSubscribe): a result with the error, then complete.
      const [refused] = (await run('subscription { sessionRevoked { reason } }')) as {
        errors?: { extensions?: { code?: string } }[];
      }[];
      expect(refused?.errors?.map((error) => error.extensions?.code)).toEqual(['UNAUTHENTICATED']);
      const [invalid] = (await run('query { nothingHere }')) as { message?: string }[][];
      expect(invalid?.[0]?.message).toBe('Cannot query field "nothingHere" on type "Query".');
    } finally {
      await client.dispose();
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    const access = entries().filter((entry) => entry.msg === 'request' && entry.transport === 'websocket');
    expect(
      access.map((entry) => [entry.operationName, entry.operationType, entry.outcome, typeof entry.durationMs]),
    ).toEqual([
      ['OverSocket', 'query', 'success', 'number'],
      [undefined, 'subscription', 'error', 'number'],
      [undefined, undefined, 'error', 'number'],
    ]);
    const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    for (const entry of access) {
      expect(entry.requestId).toMatch(UUID);
      expect(entry.connectionId).toBe(access[0]?.connectionId);
    }
    expect(new Set(access.map((entry) => entry.requestId)).size).toBe(3);
    expect(access[0]?.connectionId).toMatch(UUID);
  });

  it("keeps a logged error's own code (ECONNREFUSED) and still redacts every other code and secret", () => {
    const written: string[] = [];
    const logger = createLogger(
      { logLevel: 'info' },
      new Writable({
        write(chunk, _encoding, done) {
          written.push(chunk.toString());
          done();
        },
      }),
    );
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5'), { code: 'ECONNREFUSED' });
    logger.error({ err: new Error('mail not sent', { cause: refused }) }, 'wrapped');
    logger.error({ err: refused, input: { code: 'K7M2QX', password: 'hunter2-pw' } }, 'direct');
    logger.error({ err: Object.assign(new Error('odd'), { code: 'bad code with spaces K7M2QX' }) }, 'odd');
    const [wrapped, direct, odd] = written.map((line) => JSON.parse(line));
    expect(wrapped.err.cause.code).toBe('ECONNREFUSED');
    expect(direct.err.code).toBe('ECONNREFUSED');
    expect(direct.input).toEqual({ code: '[redacted]', password: '[redacted]' });
    expect(odd.err.code).toBe('[redacted]');
    expect(written.join('')).not.toMatch(/K7M2QX|hunter2/);
  });

  it('neither logs nor answers a secret of any mutation sent with malformed variables or as a document literal, over HTTP and WebSocket', async () => {
    const schema = buildSchema();
    const targets = secretArguments();
    // The mutations of today that take a secret; any added later is found the same way.
    expect(targets.map((target) => `${target.mutation}.${target.field ?? target.arg}`)).toEqual(
      expect.arrayContaining([
        'login.password',
        'register.password',
        'changePassword.currentPassword',
        'changePassword.newPassword',
        'deleteAccount.password',
        'refresh.refreshToken',
        'resetPassword.code',
        'resetPassword.newPassword',
        'verifyEmail.code',
        'loginWithOAuth.code',
        'loginWithOAuth.state',
        'linkOAuthProvider.code',
      ]),
    );
    const secrets: string[] = [];
    const cases: { query: string; variables?: Record<string, unknown> }[] = [];
    let n = 0;
    const secret = () => {
      n += 1;
      const value = `Sekrit-${n}-${Math.random().toString(36).slice(2, 10)}`;
      secrets.push(value);
      return value;
    };
    const numericSecret = () => {
      n += 1;
      const value = 271_828.182_845 + n;
      secrets.push(String(value));
      return value;
    };
    for (const { mutation, arg, argType, field } of targets) {
      const typeName = String(argType);
      const returned = schema.getMutationType()?.getFields()[mutation]?.type;
      const tail = returned && isLeafType(getNamedType(returned)) ? '' : ' { __typename }';
      const document = `mutation M($v: ${typeName}) { ${mutation}(${arg}: $v)${tail} }`;
      const wrap = (value: unknown) => (field ? { ...(sample(argType) as object), [field]: value } : value);
      // Variables that fail coercion: an extra field, a wrong type, a wrong nesting, a list.
      if (field) cases.push({ query: document, variables: { v: { ...(wrap(secret()) as object), rememberMe: true } } });
      if (field) cases.push({ query: document, variables: { v: { ...(wrap(secret()) as object), [secret()]: 1 } } });
      cases.push({ query: document, variables: { v: wrap(numericSecret()) } });
      cases.push({ query: document, variables: { v: wrap({ value: secret() }) } });
      cases.push({ query: document, variables: { v: wrap([secret()]) } });
      cases.push({ query: document, variables: { v: field ? secret() : { [field ?? 'value']: secret() } } });
      // The secret written into the document: beside an unknown field, as a bare name, a number, a syntax error.
      const literal = (value: string) => {
        if (!field) return value;
        const others = Object.entries(sample(argType) as Record<string, unknown>)
          .filter(([name]) => name !== field)
          .map(([name, v]) => `${name}: ${JSON.stringify(v)}`);
        return `{ ${[...others, `${field}: ${value}`].join(', ')} }`;
      };
      const inline = (value: string, extra = '') =>
        `mutation { ${mutation}(${arg}: ${literal(value)}${extra})${tail} }`;
      if (field) {
        const value = secret();
        cases.push({ query: inline(JSON.stringify(value)).replace(`${field}:`, `unknownField: 1, ${field}:`) });
      }
      cases.push({ query: inline(`Sekrit_${secret().replace(/-/g, '_').slice(7)}`) });
      const bare = `Sekrit_${n}_${Math.random().toString(36).slice(2, 10)}`;
      secrets.push(bare);
      cases.push({ query: inline(bare) });
      cases.push({ query: inline(String(numericSecret())) });
      cases.push({ query: inline(`"${secret()}" "x"`) });
      cases.push({ query: inline(`"${secret()}`) });
    }

    const answers: string[] = [];
    for (const body of cases) {
      const response = await fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
        body: JSON.stringify(body),
      });
      const text = await response.text();
      answers.push(text);
      expect(JSON.parse(text).errors?.length, text).toBeGreaterThan(0);
    }

    const leaks = (where: string[]) =>
      secrets.filter((value) => where.some((text) => text.includes(value))).map((value) => value.slice(0, 9));
    expect(leaks(answers), 'secrets answered over HTTP').toEqual([]);
    expect(leaks(lines), 'secrets logged').toEqual([]);

    // The same over WebSocket, each case its own operation on one socket.
    const socket = new WebSocket(wsUrl(t.url), 'graphql-transport-ws');
    const received: string[] = [];
    socket.on('message', (data) => received.push(String(data)));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init', payload: {} }));
    const finished = () =>
      new Set(
        received
          .map((message) => JSON.parse(message) as { id?: string; type: string })
          .filter((message) => message.type === 'error' || message.type === 'complete')
          .map((message) => message.id),
      ).size;
    const waitFor = async (check: () => boolean) => {
      const deadline = Date.now() + 15_000;
      while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    };
    await waitFor(() => received.some((message) => message.includes('connection_ack')));
    // In batches below the socket's limit of operations at once.
    for (let start = 0; start < cases.length; start += 50) {
      cases.slice(start, start + 50).forEach((body, i) => {
        socket.send(JSON.stringify({ id: `c${start + i}`, type: 'subscribe', payload: body }));
      });
      await waitFor(() => finished() >= Math.min(cases.length, start + 50));
    }
    expect(finished()).toBe(cases.length);
    expect(socket.readyState).toBe(WebSocket.OPEN);
    socket.close();
    await new Promise((resolve) => setTimeout(resolve, 200));

    expect(secrets.length).toBeGreaterThan(targets.length * 8);
    const output = lines.join('\n');
    const responses = [...answers, ...received].join('\n');
    for (const value of secrets) {
      expect(output, `a secret (${value.slice(0, 9)}…) was logged`).not.toContain(value);
      expect(responses, `a secret (${value.slice(0, 9)}…) was answered`).not.toContain(value);
    }
  });
});
