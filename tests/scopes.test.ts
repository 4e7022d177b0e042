import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { errorCode, registerUser } from './support/graphql.ts';

describe('field access from the token claims', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  /** A token signed with the service's own key, for a real session, but with the scopes we choose. */
  async function tokenWithScopes(scope: string) {
    const user = await registerUser(t.gql);
    const { alg, kid, key } = t.app.keys.signing;
    const token = await new SignJWT({ sid: user.session.id, scope, roles: ['USER'] })
      .setProtectedHeader({ alg, kid, typ: 'at+jwt' })
      .setIssuer(t.app.config.issuer)
      .setAudience(t.app.config.audience)
      .setSubject(user.user.id)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(key);
    return { user, token };
  }

  it('refuses sessions:write mutations to a token without that scope, with FORBIDDEN', async () => {
    const { token } = await tokenWithScopes('profile:read sessions:read');
    const result = await t.gql('mutation { revokeOtherSessions }', {}, { token });
    expect(errorCode(result)).toBe('FORBIDDEN');
  });

  it("hides the caller's own sessions from a token without sessions:read", async () => {
    const { token, user } = await tokenWithScopes('profile:read');
    const result = await t.gql('{ me { id sessions { id } } }', {}, { token });
    expect(errorCode(result)).toBe('FORBIDDEN');
    expect(result.errors?.[0]?.path).toEqual(['me', 'sessions']);
    const allowed = await t.gql('{ me { id email } }', {}, { token });
    expect(allowed.data?.me).toEqual({ id: user.user.id, email: user.user.email });
  });

  it('answers UNAUTHENTICATED, not FORBIDDEN, to anonymous callers of protected fields', async () => {
    for (const mutation of [
      'mutation { logout }',
      'mutation { revokeOtherSessions }',
      'mutation { revokeSession(id: "x") }',
    ]) {
      expect(errorCode(await t.gql(mutation))).toBe('UNAUTHENTICATED');
    }
  });

  it('lets a token with the scope through without reading roles from the database', async () => {
    const { token } = await tokenWithScopes('sessions:write');
    const result = await t.gql('mutation { revokeOtherSessions }', {}, { token });
    expect(result.errors).toBeUndefined();
    expect(result.data).toEqual({ revokeOtherSessions: 0 });
  });
});
