// What a client controls about a request, beyond its arguments: a very long User-Agent is kept to its column's
// width (on MySQL a longer value would fail the write), a JSON body must be well-formed UTF-8, a body the parser
// refuses is never echoed back, and revoking an already revoked session is NOT_FOUND.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { expectError, expectUnauthenticated } from './support/expect.ts';
import {
  type Gql,
  loginUser,
  me,
  refreshToken,
  registerUser,
  revokeSession,
  signIn,
  uniqueEmail,
} from './support/graphql.ts';

const PASSWORD = 'correct horse battery';
const LOGIN = 'mutation($input: LoginInput!) { login(input: $input) { accessToken } }';
const REGISTER = 'mutation($input: RegisterInput!) { register(input: $input) { accessToken } }';

describe.each(dialects())('request integrity on %s', (dialect) => {
  let t: TestApp;
  const gql: Gql = (query, variables, options) => t.gql(query, variables, options);

  beforeAll(async () => {
    t = await startTestApp({ dialect });
  });
  afterAll(() => t?.close());

  it('answers every step of a session normally with a 600-character User-Agent, and keeps 512 characters of it', async () => {
    const headers = { 'user-agent': `Mozilla/5.0 ${'x'.repeat(600)}` };
    const email = uniqueEmail('long-ua');
    const registered = await gql(REGISTER, { input: { email, password: PASSWORD } }, { headers });
    expect(registered.errors).toBeUndefined();
    expectError(await loginUser(gql, email, 'a wrong password', headers), 'INVALID_CREDENTIALS');
    const session = await signIn(gql, email, PASSWORD, headers);
    expect(session.session.userAgent).toBe(headers['user-agent'].slice(0, 512));
    const refreshed = await gql(
      'mutation($t: String!) { refresh(refreshToken: $t) { accessToken } }',
      { t: session.refreshToken },
      { headers },
    );
    expect(refreshed.errors).toBeUndefined();
    const logout = await gql('mutation { logout }', {}, { token: session.accessToken, headers });
    expect(logout).toMatchObject({ data: { logout: true } });
    expectUnauthenticated(await me(gql, session.accessToken), 'SESSION_REVOKED');
    const failures = await (t.app.orm.em.fork() as Em).find(AuditEvent, { type: 'LOGIN_FAILED' });
    expect(failures.some((row) => row.userAgent === headers['user-agent'].slice(0, 512))).toBe(true);
  });

  it('answers NOT_FOUND to revokeSession of one of my sessions that is already revoked', async () => {
    const first = await registerUser(gql);
    const second = await signIn(gql, first.user.email, first.password);
    expect((await gql('mutation { logout }', {}, { token: first.accessToken })).data).toEqual({ logout: true });
    const again = await revokeSession(gql, first.session.id, second.accessToken);
    expectError(again, 'NOT_FOUND');
    expect((await refreshToken(gql, second.refreshToken)).errors).toBeUndefined();
  });
});

describe('request bodies', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  const post = async (body: string | Buffer) => {
    const response = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : new Uint8Array(body),
    });
    return { status: response.status, text: await response.text() };
  };
  const withPassword = (query: string, email: string, password: Buffer) =>
    Buffer.concat([
      Buffer.from(`{"query":${JSON.stringify(query)},"variables":{"input":{"email":"${email}","password":"abcdefgh`),
      password,
      Buffer.from('"}}}'),
    ]);

  it('refuses a body that is not well-formed UTF-8 with 400, so two different invalid byte sequences are never one password', async () => {
    const email = uniqueEmail('bytes');
    // The UTF-8 form of a lone surrogate (as CESU-8 or WTF-8 write it), and bytes that are no UTF-8 at all.
    for (const bytes of [Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xff, 0xfe, 0xc0])]) {
      for (const query of [REGISTER, LOGIN]) {
        const answer = await post(withPassword(query, email, bytes));
        expect(answer.status).toBe(400);
        expect(JSON.parse(answer.text).errors).toEqual([
          { message: 'The request body is not valid UTF-8.', extensions: { code: 'BAD_REQUEST' } },
        ]);
      }
    }
    expectError(await loginUser(t.gql, email, 'abcdefgh\ufffd\ufffd\ufffd'), 'INVALID_CREDENTIALS');
  });

  it('never echoes a body it cannot parse (it may hold a password)', async () => {
    const secret = 'HunterTwoSecret';
    const truncated = `{"query":${JSON.stringify(LOGIN)},"variables":{"input":{"email":"a@b.co","password":"${secret}"}}`;
    for (const body of [truncated, `"${secret}"`, `[{"password":"${secret}"}]`, 'null']) {
      const answer = await post(body);
      expect(answer.status).toBe(400);
      expect(answer.text).not.toContain(secret);
      expect(JSON.parse(answer.text).errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
    }
  });
});
