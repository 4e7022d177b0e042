// A passkey as the second factor in real Chromium (CDP virtual authenticator): after the right password, login
// answers MFA_REQUIRED with passkeyOptions for the user's passkeys, and verifyMfa with the browser's assertion
// finishes the sign-in; an assertion made on an origin the app does not trust is a wrong factor.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Passkey } from '../src/db/entities.ts';
import type { Em } from '../src/db/orm.ts';
import { dialects, type TestApp } from './support/app.ts';
import { errorCode, extensionsOf, loginUser, registerUser } from './support/graphql.ts';
import { VERIFY_MFA } from './support/mfa.ts';
import { type PasskeyApp, type PasskeyBrowser, registerPasskey, startPasskeyApp } from './support/passkey-browser.ts';
import { serviceAvailable } from './support/services.ts';

describe.skipIf(!serviceAvailable('chromium')).each(dialects())('a passkey as the second factor (%s)', (dialect) => {
  let t: TestApp;
  let browser: PasskeyBrowser;
  let app: PasskeyApp | undefined;

  beforeAll(async () => {
    app = await startPasskeyApp(dialect);
    ({ t, browser } = app);
  }, 120_000);

  afterAll(() => app?.close());

  it('answers MFA_REQUIRED with passkeyOptions after the password, and verifyMfa with the assertion signs in', async () => {
    await browser.clear();
    const holder = await registerUser(t.gql);
    const passkeyId = await registerPasskey(t.gql, browser, holder.accessToken);
    const stored = await (t.app.orm.em.fork() as Em).findOneOrFail(Passkey, { id: passkeyId });

    // An assertion made elsewhere is a wrong factor (its challenge is spent with it).
    const first = extensionsOf(await loginUser(t.gql, holder.user.email, holder.password));
    expect(first).toMatchObject({ code: 'MFA_REQUIRED', methods: ['PASSKEY'] });
    expect(first?.passkeyOptions.allowCredentials.map((c: { id: string }) => c.id)).toEqual([stored.credentialId]);
    expect(first?.passkeyOptions.userVerification).toBe('required');
    const forged = await browser.authenticate(first?.passkeyOptions, browser.otherOrigin);
    const refused = await t.gql(VERIFY_MFA, { input: { mfaToken: first?.mfaToken, passkeyResponse: forged } });
    expect(errorCode(refused)).toBe('INVALID_CODE');

    const second = extensionsOf(await loginUser(t.gql, holder.user.email, holder.password));
    expect(second?.code).toBe('MFA_REQUIRED');
    const assertion = await browser.authenticate(second?.passkeyOptions);
    const verified = await t.gql<{ verifyMfa: { user: { id: string }; session: { current: boolean } } }>(VERIFY_MFA, {
      input: { mfaToken: second?.mfaToken, passkeyResponse: assertion },
    });
    expect(verified.errors).toBeUndefined();
    expect(verified.data?.verifyMfa.user.id).toBe(holder.user.id);
    // The assertion answered that step's challenge only: a passwordless sign-in does not take it.
    const challenge = await t.gql<{ startPasskeyLogin: { challengeId: string } }>(
      'mutation { startPasskeyLogin { challengeId } }',
    );
    const reused = await t.gql('mutation($i: PasskeyLoginInput!) { loginWithPasskey(input: $i) { accessToken } }', {
      i: { challengeId: challenge.data?.startPasskeyLogin.challengeId, response: assertion },
    });
    expect(errorCode(reused)).toBe('INVALID_CREDENTIALS');
  });
});
