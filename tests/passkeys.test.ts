// Passkeys through the API without a browser: the relying party's configuration, who may register and list,
// what an unknown email learns (nothing), removal of unknown or others' passkeys, and that every refused
// passkey sign-in is INVALID_CREDENTIALS counted against the client IP's failed sign-ins (reserved first).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { errorCode, extensionsOf, registerUser, uniqueEmail } from './support/graphql.ts';

const noFiles = () => {
  throw new Error('no files');
};

describe('WEBAUTHN_* configuration', () => {
  it('derives the RP id and origin from PUBLIC_URL and the RP name from PRODUCT_NAME', () => {
    const config = loadConfig({ PUBLIC_URL: 'https://auth.example.com/', PRODUCT_NAME: 'Acme' }, noFiles);
    expect(config.webauthn).toEqual({
      rpId: 'auth.example.com',
      rpName: 'Acme',
      origins: ['https://auth.example.com'],
    });
  });

  it('reads them when set', () => {
    const config = loadConfig(
      {
        PUBLIC_URL: 'https://auth.example.com',
        WEBAUTHN_RP_ID: 'example.com',
        WEBAUTHN_ORIGINS: 'https://app.example.com, https://example.com:8443',
        WEBAUTHN_RP_NAME: 'Acme Login',
      },
      noFiles,
    );
    expect(config.webauthn).toEqual({
      rpId: 'example.com',
      rpName: 'Acme Login',
      origins: ['https://app.example.com', 'https://example.com:8443'],
    });
  });

  it('names each bad variable: an RP id that is no domain, an origin with a path, off the domain or not https', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env, noFiles);
      } catch (error) {
        return (error as ConfigError).problems;
      }
      return [];
    };
    expect(problems({ WEBAUTHN_RP_ID: 'https://example.com' })).toEqual([
      'WEBAUTHN_RP_ID: expected a domain name, like example.com (no scheme, port or path)',
    ]);
    expect(problems({ WEBAUTHN_ORIGINS: 'https://app.example.com/login' })).toEqual([
      'WEBAUTHN_ORIGINS: expected comma-separated origins, like https://app.example.com (scheme, host and port only)',
    ]);
    expect(
      problems({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://example.org,http://app.example.com' }),
    ).toEqual([
      'WEBAUTHN_ORIGINS: https://example.org is not on the domain of WEBAUTHN_RP_ID (example.com)',
      'WEBAUTHN_ORIGINS: http://app.example.com must be https (passkeys work only in a secure context)',
    ]);
    expect(() => loadConfig({ WEBAUTHN_ORIGINS: 'http://localhost:3000' }, noFiles)).not.toThrow(ConfigError);
  });
});

describe.each(dialects())('passkeys through the API (%s)', (dialect) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ dialect, env: { RATE_LIMIT_LOGIN_IP: '3/15m' } });
  }, 60_000);

  afterAll(async () => {
    await t?.close();
  });

  const startLogin = (email?: string) =>
    t.gql<{ startPasskeyLogin: { challengeId: string; options: Record<string, any> } }>(
      'mutation($e: String) { startPasskeyLogin(email: $e) { challengeId options } }',
      email === undefined ? {} : { e: email },
    );

  it('registration and the list need a signed-in user; another user’s passkeys are not readable', async () => {
    expect(extensionsOf(await t.gql('mutation { startPasskeyRegistration }'))).toMatchObject({
      code: 'UNAUTHENTICATED',
    });
    const finish = await t.gql('mutation { finishPasskeyRegistration(response: {}) { id } }');
    expect(errorCode(finish)).toBe('UNAUTHENTICATED');
    const holder = await registerUser(t.gql);
    const admin = await signInAsAdmin(t);
    const read = await t.gql(
      `query($id: ID!) { user(id: $id) { email passkeys { id } } }`,
      { id: holder.user.id },
      {
        token: admin.accessToken,
      },
    );
    expect(errorCode(read)).toBe('FORBIDDEN');
    const own = await t.gql('{ me { passkeys { id } } }', {}, { token: holder.accessToken });
    expect(own.data?.me).toEqual({ passkeys: [] });
    // A response that is no registration: refused, and the user still has none.
    await t.gql('mutation { startPasskeyRegistration }', {}, { token: holder.accessToken });
    const bogus = await t.gql(
      'mutation($r: JSON!) { finishPasskeyRegistration(response: $r) { id } }',
      { r: { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: {} } },
      { token: holder.accessToken },
    );
    expect(extensionsOf(bogus)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'response' });
  });

  it('gives an unknown email the same options as an account without passkeys, and a fresh challenge each time', async () => {
    const holder = await registerUser(t.gql);
    const known = (await startLogin(holder.user.email)).data?.startPasskeyLogin;
    const unknown = (await startLogin(uniqueEmail('nobody'))).data?.startPasskeyLogin;
    const anyone = (await startLogin()).data?.startPasskeyLogin;
    const shape = (options: Record<string, any> | undefined) => ({ ...options, challenge: typeof options?.challenge });
    expect(shape(known?.options)).toEqual({
      rpId: 'localhost',
      challenge: 'string',
      allowCredentials: [],
      timeout: 300_000,
      userVerification: 'required',
    });
    expect(shape(unknown?.options)).toEqual(shape(known?.options));
    expect(shape(anyone?.options)).toEqual(shape(known?.options));
    expect(new Set([known?.options.challenge, unknown?.options.challenge, anyone?.options.challenge]).size).toBe(3);
    expect(new Set([known?.challengeId, unknown?.challengeId, anyone?.challengeId]).size).toBe(3);
  });

  it('removePasskey of an unknown id is NOT_FOUND', async () => {
    const holder = await registerUser(t.gql);
    const removed = await t.gql(
      'mutation { removePasskey(id: "no-such-passkey") { id } }',
      {},
      {
        token: holder.accessToken,
      },
    );
    expect(errorCode(removed)).toBe('NOT_FOUND');
  });

  it('checks one credential per request: loginWithPasskey beside login is refused before either runs', async () => {
    const both = await t.gql(
      `mutation {
        a: loginWithPasskey(input: { challengeId: "x", response: {} }) { accessToken }
        b: login(input: { email: "a@example.com", password: "whatever1" }) { accessToken }
      }`,
    );
    expect(errorCode(both)).toBe('BAD_USER_INPUT');
    expect(both.data).toBeUndefined();
  });

  it('answers INVALID_CREDENTIALS to any refused passkey, each counted against the IP (3 here), then RATE_LIMITED', async () => {
    const challenge = (await startLogin()).data?.startPasskeyLogin.challengeId;
    const attempts = [
      { challengeId: 'no-such-challenge', response: {} },
      { challengeId: challenge, response: { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: {} } },
      // Its challenge was spent by the previous try, whatever its outcome.
      { challengeId: challenge, response: 'not an object' },
    ];
    for (const input of attempts) {
      const refused = await t.gql('mutation($i: PasskeyLoginInput!) { loginWithPasskey(input: $i) { accessToken } }', {
        i: input,
      });
      expect(extensionsOf(refused)).toMatchObject({ code: 'INVALID_CREDENTIALS' });
    }
    const fresh = (await startLogin()).data?.startPasskeyLogin.challengeId;
    const limited = await t.gql('mutation($i: PasskeyLoginInput!) { loginWithPasskey(input: $i) { accessToken } }', {
      i: { challengeId: fresh, response: {} },
    });
    expect(extensionsOf(limited)).toMatchObject({ code: 'RATE_LIMITED' });
  });
});
