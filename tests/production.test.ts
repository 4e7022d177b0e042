// What production hides: the subgraph SDL from callers without an SDL scope (unless FEDERATION_SDL=public),
// and every "Did you mean" hint (fields, enum values, in literals and in variables).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { User } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { ed25519Pem, expectUnauthenticated } from './support/expect.ts';
import { errorCode, loginUser, type Payload, registerUser } from './support/graphql.ts';

const SDL = '{ _service { sdl } }';

const productionEnv = (extra: Record<string, string> = {}) => ({
  NODE_ENV: 'production',
  JWT_PRIVATE_KEY: ed25519Pem(),
  SMTP_URL: 'smtp://127.0.0.1:1',
  MAIL_FROM: 'Auth <no-reply@example.com>',
  ...extra,
});

describe('production', () => {
  let t: TestApp;
  let user: Payload;
  let admin: Payload;

  beforeAll(async () => {
    t = await startTestApp({ env: productionEnv() });
    user = await registerUser(t.gql);
    const root = await registerUser(t.gql);
    await (t.app.orm.em.fork() as Em).nativeUpdate(User, { id: root.user.id }, { roles: 'USER,ADMIN' });
    admin = (await loginUser(t.gql, root.user.email, root.password)).data?.login as Payload;
  });
  afterAll(() => t?.close());

  it('answers _service { sdl } to a token with scope users:read only', async () => {
    expectUnauthenticated(await t.gql(SDL), 'AUTHENTICATION_REQUIRED');
    expect(errorCode(await t.gql(SDL, {}, { token: user.accessToken }))).toBe('FORBIDDEN');
    const allowed = await t.gql<{ _service: { sdl: string } }>(SDL, {}, { token: admin.accessToken });
    expect(allowed.errors).toBeUndefined();
    expect(allowed.data?._service.sdl).toContain('@key(fields: "id")');
  });

  it('gives no "Did you mean" hint for a field, an enum value literal or an enum value in a variable', async () => {
    const field = await t.gql('{ mee { id } }');
    const literal = await t.gql(
      'mutation { setUserRoles(userId: "x", roles: [ADMN]) { id } }',
      {},
      { token: admin.accessToken },
    );
    const variable = await t.gql(
      'mutation($r: [Role!]!) { setUserRoles(userId: "x", roles: $r) { id } }',
      { r: ['ADMN'] },
      { token: admin.accessToken },
    );
    for (const response of [field, literal, variable]) {
      expect(response.errors?.length).toBeGreaterThan(0);
      const text = JSON.stringify(response.errors);
      expect(text).not.toMatch(/did you mean/i);
      expect(text).not.toContain('ADMIN');
      expect(text).not.toContain('"me"');
    }
  });
});

describe('production with FEDERATION_SDL=public', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: productionEnv({ FEDERATION_SDL: 'public' }) });
  });
  afterAll(() => t?.close());

  it('answers _service { sdl } to anyone', async () => {
    const response = await t.gql<{ _service: { sdl: string } }>(SDL);
    expect(response.errors).toBeUndefined();
    expect(response.data?._service.sdl).toContain('type User');
  });
});
