import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../src/log.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { ed25519Pem } from './support/expect.ts';
import { errorCode, type Gql, graphqlClient, PAYLOAD, type Payload, uniqueEmail } from './support/graphql.ts';

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
    const codes = t.app.services.account.codes;
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
});
