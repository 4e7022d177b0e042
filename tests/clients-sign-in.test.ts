// Every sign-in names its client (API.md "Clients"): clientId on register, login, startOAuth and loginWithOAuth;
// the tokens' client_id, aud and scope claims (checked with fast-jwt against our JWKS); the OAuth state binding the
// client; per-client redirect URIs and CORS origins, on one instance and across two sharing Redis. Through the
// public API, on SQLite and MariaDB.
import { createPublicKey, type JsonWebKey, randomUUID } from 'node:crypto';
import { createVerifier } from 'fast-jwt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthClientError, createAuthClient } from '../packages/client/src/index.ts';
import { signInAsAdmin } from './support/admin.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { expectError } from './support/expect.ts';
import {
  errorCode,
  type Gql,
  loginUser,
  PAYLOAD,
  type Payload,
  refreshToken,
  registerUser,
  uniqueEmail,
} from './support/graphql.ts';
import { type InstancePair, startInstancePair } from './support/instances.ts';
import { ACME, LOGIN, oidcAccount, REDIRECT } from './support/oauth.ts';
import { type OidcAccount, startOidcProvider, type TestOidcProvider } from './support/oidc.ts';
import { serviceAvailable } from './support/services.ts';
import { eventually } from './support/subscriptions.ts';

const ISSUER = 'https://auth.test';
const AUDIENCE = 'https://api.test';
const USER_SCOPE = 'profile:read profile:write sessions:read sessions:write';
/** A redirect URI that only the clients that list it may use (not in OAUTH_REDIRECT_URIS). */
const CLIENT_REDIRECT = 'https://web.example/oauth/callback';
const CLIENT_ID_ERROR = { code: 'BAD_USER_INPUT', field: 'clientId' };
const REDIRECT_URI_ERROR = { code: 'BAD_USER_INPUT', field: 'redirectUri' };

const START = `mutation($provider: String!, $redirectUri: String!, $clientId: ID) {
  startOAuth(provider: $provider, redirectUri: $redirectUri, clientId: $clientId) { authorizationUrl state } }`;
const REGISTER = `mutation($input: RegisterInput!) { register(input: $input) { ${PAYLOAD} } }`;
const LOGIN_PASSWORD = `mutation($input: LoginInput!) { login(input: $input) { ${PAYLOAD} } }`;
const CREATE_CLIENT = `mutation($input: CreateClientInput!) { createClient(input: $input) { client { id } } }`;
const UPDATE_CLIENT = `mutation($id: ID!, $input: UpdateClientInput!) { updateClient(id: $id, input: $input) { id } }`;
const SET_CLIENT_DISABLED = `mutation($id: ID!, $disabled: Boolean!) {
  setClientDisabled(id: $id, disabled: $disabled) { id disabled } }`;
const SET_USER_SCOPES = `mutation($userId: ID!, $scopes: [String!]!) { setUserScopes(userId: $userId, scopes: $scopes) { id } }`;
const USER_AUDIT = `query($id: ID!) { user(id: $id) { auditEvents(first: 100) { edges { node { type } } } } }`;

interface TokenClaims {
  iss: string;
  aud: string | string[];
  sub: string;
  client_id: string;
  sid: string;
  scope: string;
  roles: string[];
}

describe.each(dialects())('sign-in names its client on %s', (dialect) => {
  let t: TestApp;
  let oidc: TestOidcProvider;
  let admin: Payload;
  let verify: (token: string) => TokenClaims;

  beforeAll(async () => {
    oidc = await startOidcProvider({ redirectUris: [REDIRECT, CLIENT_REDIRECT], clients: [ACME] });
    t = await startTestApp({
      dialect,
      env: {
        OAUTH_REDIRECT_URIS: REDIRECT,
        OAUTH_OIDC_ACME_ISSUER: oidc.issuer,
        OAUTH_OIDC_ACME_CLIENT_ID: ACME.clientId,
        OAUTH_OIDC_ACME_CLIENT_SECRET: ACME.clientSecret,
        // Low enough that failed logins counted by mistake would lock the account within one test.
        RATE_LIMIT_LOGIN_ACCOUNT: '5/15m',
      },
    });
    admin = await signInAsAdmin(t);
    const { keys } = (await (await fetch(`${t.url}/.well-known/jwks.json`)).json()) as { keys: JsonWebKey[] };
    expect(keys).toHaveLength(1);
    const key = createPublicKey({ key: keys[0] ?? {}, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    // A JWT library other than ours (jose), with our published key: what a resource server would do.
    verify = createVerifier({
      key: key.toString(),
      algorithms: ['EdDSA'],
      allowedIss: ISSUER,
      allowedAud: AUDIENCE,
      checkTyp: 'at+jwt',
      requiredClaims: ['iss', 'aud', 'sub', 'client_id', 'sid', 'jti', 'iat', 'exp', 'scope', 'roles'],
    });
  });

  afterAll(async () => {
    await t?.close();
    await oidc?.stop();
  });

  const gql: Gql = (query, variables, options) => t.gql(query, variables, options);
  const asAdmin: Gql = (query, variables, options) => t.gql(query, variables, { ...options, token: admin.accessToken });

  /** Creates a PUBLIC client through the admin API; returns its (unique) id. */
  async function createClient(fields: Record<string, unknown> = {}): Promise<string> {
    const id = `app-${randomUUID().slice(0, 8)}`;
    const created = await asAdmin(CREATE_CLIENT, { input: { id, name: `App ${id}`, type: 'PUBLIC', ...fields } });
    expect(created.errors).toBeUndefined();
    expect(created.data?.createClient.client.id).toBe(id);
    return id;
  }

  async function setClientDisabled(id: string, disabled: boolean) {
    const answer = await asAdmin(SET_CLIENT_DISABLED, { id, disabled });
    expect(answer.data?.setClientDisabled).toEqual({ id, disabled });
  }

  const register = (input: Record<string, unknown>) =>
    gql<{ register: Payload }>(REGISTER, {
      input: { email: uniqueEmail(), password: 'correct horse battery', ...input },
    });
  const login = (input: { email: string; password: string; clientId?: string | null }) =>
    gql<{ login: Payload }>(LOGIN_PASSWORD, { input });
  const startOAuth = (variables: { redirectUri?: string; clientId?: string | null }, token?: string) =>
    gql<{ startOAuth: { authorizationUrl: string; state: string } }>(
      START,
      { provider: 'acme', redirectUri: REDIRECT, ...variables },
      { token },
    );
  const loginWithOAuth = (input: Record<string, unknown>) => gql<{ loginWithOAuth: Payload }>(LOGIN, { input });

  /** startOAuth for `clientId`, then the person at the provider: the callback's code and state. */
  async function authorize(
    account: OidcAccount,
    options: { clientId?: string | null; redirectUri?: string } = {},
  ): Promise<{ provider: string; code: string; state: string }> {
    const redirectUri = options.redirectUri ?? REDIRECT;
    const started = await startOAuth({ redirectUri, clientId: options.clientId });
    expect(started.errors).toBeUndefined();
    const { authorizationUrl, state } = started.data?.startOAuth ?? { authorizationUrl: '', state: '' };
    const back = await oidc.authorize(authorizationUrl, account);
    expect(`${back.origin}${back.pathname}`).toBe(redirectUri);
    expect(back.searchParams.get('state')).toBe(state);
    return { provider: 'acme', code: back.searchParams.get('code') ?? '', state };
  }

  /** The types of the user's audit events, newest first (read by the admin). */
  async function auditTypes(userId: string): Promise<string[]> {
    const answer = await asAdmin(USER_AUDIT, { id: userId });
    expect(answer.errors).toBeUndefined();
    return answer.data?.user.auditEvents.edges.map((edge: { node: { type: string } }) => edge.node.type);
  }

  it("gives a default sign-in's tokens client_id default and aud AUDIENCE (a string), kept by refresh", async () => {
    const registered = await registerUser(gql);
    const explicit = await login({ email: registered.user.email, password: registered.password, clientId: 'default' });
    const refreshed = await refreshToken(gql, registered.refreshToken);
    for (const payload of [registered, explicit.data?.login, refreshed.data?.refresh]) {
      expect(verify(payload?.accessToken ?? '')).toMatchObject({
        iss: ISSUER,
        aud: AUDIENCE,
        sub: registered.user.id,
        client_id: 'default',
        scope: USER_SCOPE,
        roles: ['USER'],
      });
    }
  });

  it("gives a client's tokens its client_id and aud [its audiences, AUDIENCE]; refresh keeps both; the API takes them", async () => {
    const clientId = await createClient({ audiences: ['https://api.example.com'] });
    const expected = { client_id: clientId, aud: ['https://api.example.com', AUDIENCE] };

    const registered = await register({ clientId });
    expect(registered.errors).toBeUndefined();
    const first = registered.data?.register as Payload;
    expect(verify(first.accessToken)).toMatchObject({ ...expected, sub: first.user.id, sid: first.session.id });

    const signedIn = await login({ email: first.user.email, password: 'correct horse battery', clientId });
    const second = signedIn.data?.login as Payload;
    expect(verify(second.accessToken)).toMatchObject({ ...expected, sid: second.session.id });

    // Refresh names no client: the session remembers it.
    const refreshed = (await refreshToken(gql, second.refreshToken)).data?.refresh as Payload;
    expect(verify(refreshed.accessToken)).toMatchObject({ ...expected, sid: second.session.id });

    const me = await gql('{ me { id } }', {}, { token: refreshed.accessToken });
    expect(me.data).toEqual({ me: { id: first.user.id } });
  });

  it("carries the user's API scopes only in tokens of clients that declare them", async () => {
    const storage = await createClient({ scopes: ['storage.read'] });
    const plain = await createClient();
    const user = await registerUser(gql);
    const granted = await asAdmin(SET_USER_SCOPES, {
      userId: user.user.id,
      scopes: ['storage.read', 'storage.write'],
    });
    expect(granted.errors).toBeUndefined();
    const scopeFor = async (clientId: string | null) => {
      const answer = await login({ email: user.user.email, password: user.password, clientId });
      expect(answer.errors).toBeUndefined();
      return verify(answer.data?.login.accessToken ?? '').scope;
    };
    expect(await scopeFor(storage)).toBe(`${USER_SCOPE} storage.read`);
    expect(await scopeFor(plain)).toBe(USER_SCOPE);
    expect(await scopeFor(null)).toBe(USER_SCOPE);
  });

  it('refuses an unknown or disabled clientId with BAD_USER_INPUT on clientId: register, login, startOAuth', async () => {
    const disabled = await createClient();
    await setClientDisabled(disabled, true);
    const user = await registerUser(gql);
    for (const clientId of ['no-such-client', disabled, 'DEFAULT', '']) {
      const email = uniqueEmail();
      expectError(await register({ email, clientId }), CLIENT_ID_ERROR);
      // Nothing was created: the address is still free.
      expect((await register({ email })).data?.register.user.email).toBe(email);
      // The right password says nothing more than a wrong one.
      expectError(await login({ email: user.user.email, password: user.password, clientId }), CLIENT_ID_ERROR);
      expectError(await login({ email: user.user.email, password: 'a wrong password', clientId }), CLIENT_ID_ERROR);
      expectError(await startOAuth({ clientId }), CLIENT_ID_ERROR);
    }
    // Enabled again, it signs in.
    await setClientDisabled(disabled, false);
    const again = await login({ email: user.user.email, password: user.password, clientId: disabled });
    expect(verify(again.data?.login.accessToken ?? '').client_id).toBe(disabled);
  });

  it('checks the clientId before the password: wrong-client logins count no failure and lock nothing', async () => {
    const user = await registerUser(gql);
    for (let i = 0; i < 10; i++) {
      const answer = await login({
        email: user.user.email,
        password: `wrong password ${i}`,
        clientId: 'no-such-client',
      });
      expectError(answer, CLIENT_ID_ERROR);
    }
    const answer = await login({ email: user.user.email, password: user.password, clientId: 'default' });
    expect(answer.errors).toBeUndefined();
    expect(await auditTypes(user.user.id)).toEqual(['LOGIN_SUCCEEDED', 'USER_REGISTERED']);

    // The limit is live in this app: five wrong passwords for the right client do lock the account.
    const other = await registerUser(gql);
    for (let i = 0; i < 5; i++) {
      expect(errorCode(await loginUser(gql, other.user.email, `wrong password ${i}`))).toBe('INVALID_CREDENTIALS');
    }
    expect(errorCode(await loginUser(gql, other.user.email, other.password))).toBe('RATE_LIMITED');
  });

  it('binds the client given to startOAuth into the state: the OAuth session is that client’s', async () => {
    const clientId = await createClient({ audiences: ['https://api.example.com'] });
    const account = oidcAccount();
    // Sign-up, then sign-in of the same provider account, both for the client; the callback need not repeat it.
    for (const confirm of [undefined, clientId]) {
      const callback = await authorize(account, { clientId });
      const answer = await loginWithOAuth({ ...callback, clientId: confirm });
      expect(answer.errors).toBeUndefined();
      const payload = answer.data?.loginWithOAuth as Payload;
      expect(verify(payload.accessToken)).toMatchObject({
        client_id: clientId,
        aud: ['https://api.example.com', AUDIENCE],
        sid: payload.session.id,
      });
      const refreshed = (await refreshToken(gql, payload.refreshToken)).data?.refresh as Payload;
      expect(verify(refreshed.accessToken).client_id).toBe(clientId);
    }
    // Without a clientId, startOAuth signs in for the default client.
    const plain = await loginWithOAuth(await authorize(account));
    expect(verify(plain.data?.loginWithOAuth.accessToken ?? '')).toMatchObject({ client_id: 'default', aud: AUDIENCE });
  });

  it('refuses a loginWithOAuth whose clientId is not the state’s; an unusable one leaves the state unspent', async () => {
    const clientId = await createClient();
    const other = await createClient();
    const account = oidcAccount();

    // Unknown or disabled: refused before the state is taken, which then still signs in.
    const disabled = await createClient();
    await setClientDisabled(disabled, true);
    const callback = await authorize(account, { clientId });
    for (const wrong of ['no-such-client', disabled]) {
      expectError(await loginWithOAuth({ ...callback, clientId: wrong }), CLIENT_ID_ERROR);
    }
    const signedIn = await loginWithOAuth(callback);
    expect(verify(signedIn.data?.loginWithOAuth.accessToken ?? '').client_id).toBe(clientId);

    // Another usable client, or the default one: refused, and the state is spent (no second try elsewhere).
    for (const [started, named] of [
      [clientId, other],
      [clientId, 'default'],
      [null, clientId],
    ] as const) {
      const attempt = await authorize(account, { clientId: started });
      expectError(await loginWithOAuth({ ...attempt, clientId: named }), CLIENT_ID_ERROR);
      expectError(await loginWithOAuth(attempt), 'OAUTH_FAILED');
    }

    // Disabled between the start and the callback: no session for it.
    const pending = await authorize(account, { clientId: other });
    await setClientDisabled(other, true);
    expectError(await loginWithOAuth(pending), CLIENT_ID_ERROR);
  });

  it("allows a client's own redirect URIs for that client only, besides OAUTH_REDIRECT_URIS", async () => {
    const owner = await createClient({ redirectUris: [CLIENT_REDIRECT] });
    const stranger = await createClient();
    const account = oidcAccount();

    const callback = await authorize(account, { clientId: owner, redirectUri: CLIENT_REDIRECT });
    const signedIn = await loginWithOAuth(callback);
    expect(verify(signedIn.data?.loginWithOAuth.accessToken ?? '').client_id).toBe(owner);

    for (const clientId of [stranger, 'default', null]) {
      expectError(await startOAuth({ clientId, redirectUri: CLIENT_REDIRECT }), REDIRECT_URI_ERROR);
    }
    // Exact match only.
    expectError(await startOAuth({ clientId: owner, redirectUri: `${CLIENT_REDIRECT}/` }), REDIRECT_URI_ERROR);
    expectError(await startOAuth({ clientId: owner, redirectUri: `${CLIENT_REDIRECT}?x=1` }), REDIRECT_URI_ERROR);
    // The global list holds for every client.
    for (const clientId of [owner, stranger]) {
      expect((await startOAuth({ clientId })).data?.startOAuth.state).toEqual(expect.any(String));
    }

    // Dropped from the client's list while an attempt was under way: that attempt cannot finish there.
    const pending = await authorize(account, { clientId: owner, redirectUri: CLIENT_REDIRECT });
    expect((await asAdmin(UPDATE_CLIENT, { id: owner, input: { redirectUris: [] } })).errors).toBeUndefined();
    expectError(await loginWithOAuth(pending), 'OAUTH_FAILED');
    expectError(await startOAuth({ clientId: owner, redirectUri: CLIENT_REDIRECT }), REDIRECT_URI_ERROR);
  });

  it("signs in for the client package's clientId (register, login, refresh), and refuses an unusable one", async () => {
    const clientId = await createClient({ audiences: ['https://api.example.com'] });
    const auth = createAuthClient({ url: `${t.url}/graphql`, clientId, watchRevocation: false });
    const email = uniqueEmail();
    try {
      const registered = await auth.register({ email, password: 'correct horse battery' });
      expect(verify(registered.accessToken).client_id).toBe(clientId);
      const loggedIn = await auth.login({ email, password: 'correct horse battery' });
      expect(verify(loggedIn.accessToken)).toMatchObject({
        client_id: clientId,
        aud: ['https://api.example.com', AUDIENCE],
      });
      const refreshed = await auth.refresh();
      expect(verify(refreshed.accessToken).client_id).toBe(clientId);
    } finally {
      await auth.dispose();
    }
    const unknown = createAuthClient({ url: `${t.url}/graphql`, clientId: 'no-such-client', watchRevocation: false });
    const refused = await unknown.login({ email, password: 'correct horse battery' }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(AuthClientError);
    expect((refused as AuthClientError).code).toBe('BAD_USER_INPUT');
    expect((refused as AuthClientError).errors[0]?.extensions).toEqual(CLIENT_ID_ERROR);
    expect(unknown.tokens).toBeNull();
    await unknown.dispose();
  });

  describe('CORS for clients’ allowedOrigins', () => {
    const preflight = (origin: string) =>
      fetch(`${t.url}/graphql`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type, authorization',
        },
      });

    /** Whether both the preflight and the request itself let `origin` call with credentials. */
    async function allowed(origin: string): Promise<boolean> {
      const first = await preflight(origin);
      const second = await gql('{ __typename }', {}, { headers: { origin } });
      const verdicts = [first, second].map((response) => {
        const allowOrigin = response.headers.get('access-control-allow-origin');
        const credentials = response.headers.get('access-control-allow-credentials');
        if (allowOrigin === null && credentials === null) return false;
        expect([allowOrigin, credentials]).toEqual([origin, 'true']);
        return true;
      });
      expect(verdicts[0]).toBe(verdicts[1]);
      return verdicts[0] as boolean;
    }

    it("lets an enabled client's origins call with credentials, and stops at once when it is disabled", async () => {
      const origin = `https://${randomUUID().slice(0, 8)}.app.example`;
      const otherOrigin = `https://${randomUUID().slice(0, 8)}.app.example`;
      expect(await allowed(origin)).toBe(false);
      const clientId = await createClient({ allowedOrigins: [origin] });
      await createClient({ allowedOrigins: [otherOrigin, 'https://shared.app.example'] });
      expect(await allowed(origin)).toBe(true);
      expect(await allowed(otherOrigin)).toBe(true);
      // Exact origins only: not a subdomain, another scheme or port, or a trailing slash.
      for (const near of [
        `${origin}:8443`,
        origin.replace('https:', 'http:'),
        `${origin}/`,
        `https://x.${origin.slice(8)}`,
      ]) {
        expect(await allowed(near)).toBe(false);
      }

      await setClientDisabled(clientId, true);
      expect(await allowed(origin)).toBe(false);
      expect(await allowed(otherOrigin)).toBe(true);
      await setClientDisabled(clientId, false);
      expect(await allowed(origin)).toBe(true);

      // Taken off the client's list: refused from then on.
      expect((await asAdmin(UPDATE_CLIENT, { id: clientId, input: { allowedOrigins: [] } })).errors).toBeUndefined();
      expect(await allowed(origin)).toBe(false);
    });

    it("lets the refresh cookie act from an enabled client's origin only", async () => {
      const origin = `https://${randomUUID().slice(0, 8)}.app.example`;
      const clientId = await createClient({ allowedOrigins: [origin] });
      const signedIn = await gql<{ register: Payload }>(
        REGISTER,
        { input: { email: uniqueEmail(), password: 'correct horse battery', clientId, tokenDelivery: 'COOKIE' } },
        { headers: { origin } },
      );
      expect(signedIn.errors).toBeUndefined();
      const cookieOf = (response: { headers: Headers }) =>
        /^refresh_token=([^;]+)/.exec(response.headers.getSetCookie()[0] ?? '')?.[1] ?? '';
      const refresh = (cookie: string) =>
        gql<{ refresh: Payload }>(
          `mutation { refresh { ${PAYLOAD} } }`,
          {},
          {
            headers: { origin, cookie: `refresh_token=${cookie}` },
          },
        );
      const refreshed = await refresh(cookieOf(signedIn));
      expect(refreshed.errors).toBeUndefined();
      expect(refreshed.headers.get('access-control-allow-origin')).toBe(origin);
      expect(verify(refreshed.data?.refresh.accessToken ?? '').client_id).toBe(clientId);

      expect((await asAdmin(UPDATE_CLIENT, { id: clientId, input: { allowedOrigins: [] } })).errors).toBeUndefined();
      const refused = await refresh(cookieOf(refreshed));
      expectError(refused, 'FORBIDDEN');
      expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    });
  });
});

describe.skipIf(!serviceAvailable('redis-server'))('sign-in clients across two instances (Redis)', () => {
  let pair: InstancePair;
  let one: TestApp;
  let two: TestApp;
  let admin: Payload;

  beforeAll(async () => {
    pair = await startInstancePair(dialects().includes('mysql') ? 'mysql' : 'sqlite');
    ({ one, two } = pair);
    admin = await signInAsAdmin(one);
  });

  afterAll(() => pair?.close());

  /** Whether `t` lets `origin` call with credentials (preflight). */
  const corsAllows = async (t: TestApp, origin: string) =>
    (
      await fetch(`${t.url}/graphql`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST' },
      })
    ).headers.get('access-control-allow-origin') === origin;

  it('a client made or disabled on one instance signs in, or is refused, and allows its origins on the other', async () => {
    const id = `app-${randomUUID().slice(0, 8)}`;
    const origin = `https://${id}.app.example`;
    const created = await one.gql(
      CREATE_CLIENT,
      { input: { id, name: 'Shared app', type: 'PUBLIC', allowedOrigins: [origin] } },
      { token: admin.accessToken },
    );
    expect(created.errors).toBeUndefined();
    await eventually(() => corsAllows(two, origin));
    const user = await registerUser(two.gql);
    const login = (t: TestApp) =>
      t.gql<{ login: Payload }>(LOGIN_PASSWORD, {
        input: { email: user.user.email, password: user.password, clientId: id },
      });
    expect((await login(two)).errors).toBeUndefined();

    const disabled = await one.gql(SET_CLIENT_DISABLED, { id, disabled: true }, { token: admin.accessToken });
    expect(disabled.errors).toBeUndefined();
    // The instance that made the change knows before its answer; the other as soon as the bus brings it.
    expect(await corsAllows(one, origin)).toBe(false);
    expectError(await login(one), CLIENT_ID_ERROR);
    await eventually(async () => !(await corsAllows(two, origin)));
    expectError(await login(two), CLIENT_ID_ERROR);
  });
});
