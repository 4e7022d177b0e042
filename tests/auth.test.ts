import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session, User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { errorCode, loginUser, registerUser, uniqueEmail } from './support/graphql.ts';

describe.each(dialects())('password sign-in on %s', (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ dialect });
  });
  afterAll(() => t?.close());

  it('registers, normalising the email, and signs the new account in', async () => {
    const email = uniqueEmail('Reg');
    const payload = await registerUser(t.gql, { email: `  ${email.toUpperCase()} `, displayName: 'Ann' });
    expect(payload.user.email).toBe(email.toLowerCase());
    expect(payload.user.displayName).toBe('Ann');
    expect(payload.user.roles).toEqual(['USER']);
    expect(payload.user.emailVerified).toBe(false);
    expect(payload.tokenType).toBe('Bearer');
    expect(payload.session.current).toBe(true);
    const me = await t.gql('{ me { id email } }', {}, { token: payload.accessToken });
    expect(me.data?.me).toEqual({ id: payload.user.id, email: email.toLowerCase() });
  });

  it('answers INVALID_CREDENTIALS alike for an unknown email and a wrong password', async () => {
    const user = await registerUser(t.gql);
    const wrong = await loginUser(t.gql, user.user.email, 'not the password');
    const unknown = await loginUser(t.gql, uniqueEmail('nobody'), 'not the password');
    expect(errorCode(wrong)).toBe('INVALID_CREDENTIALS');
    expect(errorCode(unknown)).toBe('INVALID_CREDENTIALS');
    expect(wrong.errors?.[0]?.message).toBe(unknown.errors?.[0]?.message);
  });
});

describe.each(dialects())('a login racing the deletion of its account on %s', (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    // bcrypt at cost 10 takes tens of milliseconds: the window in which the account disappears.
    t = await startTestApp({ dialect, env: { BCRYPT_COST: '10' } });
  });
  afterAll(() => t?.close());

  it('answers INVALID_CREDENTIALS and opens no session when the account is deleted mid-login', async () => {
    const user = await registerUser(t.gql);
    const login = loginUser(t.gql, user.user.email, user.password);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await (t.app.orm.em.fork() as Em).nativeDelete(User, { id: user.user.id });
    const result = await login;
    expect(errorCode(result)).toBe('INVALID_CREDENTIALS');
    expect(await (t.app.orm.em.fork() as Em).count(Session, { user: user.user.id })).toBe(0);
  });
});
