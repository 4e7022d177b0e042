// The client package's MFA step (packages/client, from its sources) against a running service: login of an account
// with TOTP rejects with MfaRequiredError (its mfaToken and methods) and keeps no tokens; verifyMfa with a code
// (otplib, the injected clock) signs in, in BODY and in COOKIE mode, for the client the login named.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthClientError, createAuthClient, MfaRequiredError } from '../packages/client/src/index.ts';
import { MeDocument } from '../packages/client/src/operations.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { verifiedClaims } from './support/claims.ts';
import { TestClock } from './support/clock.ts';
import { cookieJar } from './support/cookie-jar.ts';
import { registerUser } from './support/graphql.ts';
import { enrollTotp, TOTP_STEP_MS, totpCode } from './support/mfa.ts';

describe('client SDK, second factor', () => {
  const clock = new TestClock();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ clock });
  });
  afterAll(() => t?.close());

  async function userWithTotp() {
    const user = await registerUser(t.gql);
    const { secret, codes } = await enrollTotp(t.gql, user.accessToken, clock.now());
    clock.advance(TOTP_STEP_MS);
    return { ...user, secret, codes };
  }

  it('rejects login with MfaRequiredError, then verifyMfa signs in', async () => {
    const user = await userWithTotp();
    const auth = createAuthClient({ url: `${t.url}/graphql`, webSocketImpl: null, now: () => clock.now() });
    try {
      const refused = await auth.login({ email: user.user.email, password: user.password }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(MfaRequiredError);
      expect(refused).toBeInstanceOf(AuthClientError);
      const mfa = refused as MfaRequiredError;
      expect(mfa.code).toBe('MFA_REQUIRED');
      expect(mfa.methods).toEqual(['TOTP', 'RECOVERY_CODE']);
      expect(mfa.mfaToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(mfa.passkeyOptions).toBeUndefined();
      expect(auth.tokens).toBeNull();
      // A wrong code: INVALID_CODE, still signed out.
      const wrong = await auth
        .verifyMfa({ mfaToken: mfa.mfaToken, code: totpCode(user.secret, clock.now(), 4) })
        .catch((e: unknown) => e);
      expect(wrong).toBeInstanceOf(AuthClientError);
      expect(wrong).not.toBeInstanceOf(MfaRequiredError);
      expect((wrong as AuthClientError).code).toBe('INVALID_CODE');
      expect(auth.tokens).toBeNull();
      const payload = await auth.verifyMfa({ mfaToken: mfa.mfaToken, code: totpCode(user.secret, clock.now()) });
      expect(payload.user.id).toBe(user.user.id);
      expect(auth.tokens?.sessionId).toBe(payload.session.id);
      expect((await auth.request(MeDocument)).me?.id).toBe(user.user.id);
    } finally {
      await auth.dispose();
    }
  });

  it('in cookie mode, for the configured client: verifyMfa sets the refresh cookie and keeps no refresh token', async () => {
    const user = await userWithTotp();
    const jar = cookieJar();
    const auth = createAuthClient({
      url: `${t.url}/graphql`,
      tokenDelivery: 'COOKIE',
      clientId: 'default',
      fetch: jar.fetch,
      webSocketImpl: null,
      now: () => clock.now(),
      tabLock: false,
    });
    try {
      const mfa = (await auth
        .login({ email: user.user.email, password: user.password })
        .catch((e: unknown) => e)) as MfaRequiredError;
      expect(mfa).toBeInstanceOf(MfaRequiredError);
      const payload = await auth.verifyMfa({ mfaToken: mfa.mfaToken, recoveryCode: user.codes[0] as string });
      expect(payload.refreshToken).toBeNull();
      expect(auth.tokens?.refreshToken).toBeNull();
      expect(jar.get('refresh_token')).toMatch(/.+/);
      expect((await verifiedClaims(t.url, payload.accessToken)).client_id).toBe('default');
      expect((await auth.refresh()).sessionId).toBe(payload.session.id);
    } finally {
      await auth.dispose();
    }
  });
});
