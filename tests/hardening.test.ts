// GraphQL-level abuse (one credential check per request, document limits, introspection), CSRF, CORS and
// the security headers of every response.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { ed25519Pem } from './support/expect.ts';
import { errorCode, registerUser } from './support/graphql.ts';

const production = () => ({
  NODE_ENV: 'production',
  JWT_PRIVATE_KEY: ed25519Pem(),
  SMTP_URL: 'smtp://127.0.0.1:2525',
  MAIL_FROM: 'no-reply@auth.test',
});

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: text ? JSON.parse(text) : undefined };
}

const messages = (body: { errors?: { message: string }[] }) => (body.errors ?? []).map((e) => e.message).join('\n');

describe('in development', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { CORS_ORIGINS: 'https://app.example' } });
  });
  afterAll(() => t?.close());

  describe('one credential check per request', () => {
    it('refuses 50 aliased login fields before any password is checked', async () => {
      const user = await registerUser(t.gql);
      const verify = vi.spyOn(t.app.services.hasher, 'verify');
      const fields = Array.from(
        { length: 50 },
        (_, i) => `a${i}: login(input: { email: "${user.user.email}", password: "guess number ${i}" }) { accessToken }`,
      );
      const response = await post(t.url, { query: `mutation { ${fields.join('\n')} }` });
      expect(response.status).toBe(400);
      expect(response.json.data).toBeUndefined();
      expect(response.json.errors.map((e: { extensions: { code: string } }) => e.extensions.code)).toContain(
        'BAD_USER_INPUT',
      );
      expect(messages(response.json)).toContain('this one asks for 50');
      expect(verify).not.toHaveBeenCalled();
      verify.mockRestore();
    });

    it('counts different credential fields, inline fragments and named fragments alike', async () => {
      const documents = [
        `mutation { login(input: { email: "a@b.co", password: "password1" }) { accessToken }
                    refresh(refreshToken: "x") { accessToken } }`,
        `mutation { ... on Mutation { login(input: { email: "a@b.co", password: "password1" }) { accessToken } }
                    b: login(input: { email: "a@b.co", password: "password2" }) { accessToken } }`,
        `mutation { ...A ...B }
         fragment A on Mutation { login(input: { email: "a@b.co", password: "password1" }) { accessToken } }
         fragment B on Mutation { verifyEmail(code: "AAAAAA") { id } }`,
      ];
      for (const query of documents) {
        const response = await post(t.url, { query });
        expect(response.status).toBe(400);
        expect(messages(response.json)).toContain('this one asks for 2');
        expect(response.json.errors[0].extensions.code).toBe('BAD_USER_INPUT');
      }
      // One is fine, next to other fields.
      const one = await post(t.url, {
        query: 'mutation { login(input: { email: "a@b.co", password: "password1" }) { accessToken } }',
      });
      expect(one.json.errors[0].extensions.code).toBe('INVALID_CREDENTIALS');
    });

    it('refuses batched (array) requests', async () => {
      const verify = vi.spyOn(t.app.services.hasher, 'verify');
      const login = { query: 'mutation { login(input: { email: "a@b.co", password: "password1" }) { accessToken } }' };
      const response = await post(
        t.url,
        Array.from({ length: 10 }, () => login),
      );
      expect(response.status).toBe(400);
      expect(verify).not.toHaveBeenCalled();
      verify.mockRestore();
    });
  });

  describe('document limits', () => {
    it('refuses a 30-deep query', async () => {
      const query = `{ ${'me { '.repeat(30)}id${' }'.repeat(30)} }`;
      const response = await post(t.url, { query });
      expect(response.status).toBe(400);
      expect(messages(response.json)).toContain('Query depth limit of 15 exceeded, found 31');
      expect(response.json.errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
    });

    it('refuses more than 15 aliases, and a 5,000-alias query', async () => {
      const sixteen = Array.from({ length: 16 }, (_, i) => `a${i}: me { id }`).join(' ');
      const response = await post(t.url, { query: `{ ${sixteen} }` });
      expect(response.status).toBe(400);
      expect(messages(response.json)).toContain('Aliases limit of 15 exceeded, found 16');
      const huge = Array.from({ length: 5000 }, (_, i) => `a${i}: me { id }`).join(' ');
      const refused = await post(t.url, { query: `{ ${huge} }` });
      expect(refused.status).toBe(400);
      expect(refused.json.data).toBeUndefined();
      expect(refused.json.errors[0].extensions.code).toMatch(/^GRAPHQL_(PARSE|VALIDATION)_FAILED$/);
    });

    it('refuses too many directives, tokens and too costly queries', async () => {
      const directives = await post(t.url, { query: `{ me ${'@include(if: true) '.repeat(11)} { id } }` });
      expect(messages(directives.json)).toContain('Directives limit of 10 exceeded');
      const tokens = await post(t.url, { query: `{ me { ${'id '.repeat(3000)} } }` });
      expect(tokens.status).toBe(400);
      expect(messages(tokens.json)).toContain('Token limit of 2000 exceeded');
      expect(tokens.json.errors[0].extensions.code).toBe('GRAPHQL_PARSE_FAILED');
      const cost = await post(t.url, { query: `{ users { edges { node { sessions { ${'id '.repeat(1200)} } } } } }` });
      expect(messages(cost.json)).toMatch(/Query Cost limit of 5000 exceeded/);
    });

    it('allows introspection and suggestions in development', async () => {
      const response = await post(t.url, { query: '{ __schema { queryType { name } } }' });
      expect(response.json).toEqual({ data: { __schema: { queryType: { name: 'Query' } } } });
      expect(messages((await post(t.url, { query: '{ mee { id } }' })).json)).toContain('Did you mean "me"?');
    });
  });

  describe('CSRF and CORS', () => {
    it('refuses requests a browser could send cross-site without a preflight', async () => {
      const query = '{ __typename }';
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
        const response = await fetch(`${t.url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': type },
          body: JSON.stringify({ query }),
        });
        expect(response.status).toBe(403);
      }
      const get = (headers: Record<string, string>) =>
        fetch(`${t.url}/graphql?query=${encodeURIComponent(query)}`, {
          headers: { accept: 'application/json', ...headers },
        });
      expect((await get({})).status).toBe(403);
      expect(await (await get({ 'x-graphql-yoga-csrf': '1' })).json()).toEqual({ data: { __typename: 'Query' } });
    });

    it('never runs a mutation over GET', async () => {
      const response = await fetch(`${t.url}/graphql?query=${encodeURIComponent('mutation { logout }')}`, {
        headers: { accept: 'application/json', 'x-graphql-yoga-csrf': '1' },
      });
      expect(response.status).toBe(405);
    });

    it('answers CORS preflights only for CORS_ORIGINS', async () => {
      const preflight = (origin: string) =>
        fetch(`${t.url}/graphql`, {
          method: 'OPTIONS',
          headers: {
            origin,
            'access-control-request-method': 'POST',
            'access-control-request-headers': 'authorization, content-type',
          },
        });
      const allowed = await preflight('https://app.example');
      expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
      expect(allowed.headers.get('access-control-allow-headers')).toContain('authorization');
      const other = await preflight('https://evil.example');
      // Yoga answers a lone allowed origin whoever asks; a browser at another origin finds it is not its own.
      for (const response of [
        other,
        await post(t.url, { query: '{ __typename }' }, { origin: 'https://evil.example' }),
      ]) {
        expect(response.headers.get('access-control-allow-origin')).not.toBe('https://evil.example');
        expect(response.headers.get('access-control-allow-origin')).not.toBe('*');
      }
    });
  });

  describe('headers', () => {
    it('sends API security headers and a request id on every response', async () => {
      const responses = [
        (await post(t.url, { query: '{ __typename }' })).headers,
        (await fetch(`${t.url}/healthz`)).headers,
        (await fetch(`${t.url}/readyz`)).headers,
        (await fetch(`${t.url}/.well-known/jwks.json`)).headers,
        (await fetch(`${t.url}/nothing-here`)).headers,
      ];
      for (const headers of responses) {
        expect(headers.get('x-content-type-options')).toBe('nosniff');
        expect(headers.get('x-frame-options')).toBe('DENY');
        expect(headers.get('referrer-policy')).toBe('no-referrer');
        expect(headers.get('content-security-policy')).toContain("default-src 'none'");
        expect(headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
        expect(headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
        expect(headers.get('strict-transport-security')).toBeNull();
      }
      expect(responses[0]?.get('cache-control')).toBe('no-store');
      expect(responses[0]?.get('cross-origin-resource-policy')).toBe('same-origin');
      // The JWKS is public and cacheable.
      expect(responses[3]?.get('cache-control')).toContain('max-age');
      expect(responses[3]?.get('cross-origin-resource-policy')).toBe('cross-origin');
    });

    it('keeps a safe X-Request-Id from the caller and replaces anything else', async () => {
      const id = async (value: string) =>
        (await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': value } })).headers.get('x-request-id');
      expect(await id('abc-123.DEF_4')).toBe('abc-123.DEF_4');
      for (const bad of ['a b', 'x'.repeat(65), '<script>', '"quoted"', 'a/b']) expect(await id(bad)).not.toBe(bad);
    });

    it('serves GraphiQL with a CSP that lets only its own scripts run', async () => {
      const page = await fetch(`${t.url}/graphql`, { headers: { accept: 'text/html' } });
      const html = await page.text();
      const csp = page.headers.get('content-security-policy') ?? '';
      const directive = (name: string) =>
        csp
          .split(';')
          .map((d) => d.trim())
          .find((d) => d.startsWith(`${name} `)) ?? '';
      const scriptSrc = directive('script-src');
      expect(scriptSrc).not.toContain("'unsafe-inline'");
      expect(scriptSrc).not.toContain("'unsafe-eval'");
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      // Every executable inline script is allowed by its hash, every external one by its origin.
      for (const [, script] of html.matchAll(/<script>([\s\S]*?)<\/script>/g)) {
        expect(scriptSrc).toContain(
          `'sha256-${createHash('sha256')
            .update(script as string)
            .digest('base64')}'`,
        );
      }
      for (const [, src] of html.matchAll(/<script[^>]* src="?([^"\s>]+)/g)) {
        const url = new URL(src as string, `${t.url}/graphql`);
        expect(url.origin === t.url || scriptSrc.includes(url.origin)).toBe(true);
        if (url.origin === t.url) {
          expect(scriptSrc).toContain("'self'");
          expect((await fetch(url)).status).toBe(200);
        }
      }
    });
  });
});

describe('in production', () => {
  let t: TestApp;
  let open: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { ...production(), PUBLIC_URL: 'https://auth.example' } });
    open = await startTestApp({ env: { ...production(), INTROSPECTION: 'true' } });
  });
  afterAll(async () => {
    await t?.close();
    await open?.close();
  });

  it('refuses introspection unless INTROSPECTION=true', async () => {
    const query = '{ __schema { types { name } } }';
    const refused = await post(t.url, { query });
    expect(refused.status).toBe(400);
    expect(refused.json.errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(messages(refused.json)).toContain('introspection');
    expect((await post(t.url, { query: '{ __type(name: "User") { name } }' })).status).toBe(400);
    expect((await post(t.url, { query: '{ __typename }' })).json).toEqual({ data: { __typename: 'Query' } });
    expect((await post(open.url, { query })).json.data.__schema.types.length).toBeGreaterThan(10);
  });

  it('gives no field suggestions', async () => {
    const response = await post(t.url, { query: '{ mee { id } }' });
    expect(response.status).toBe(400);
    expect(messages(response.json)).not.toContain('Did you mean');
    expect(messages(response.json)).not.toContain('"me"');
    const input = await post(t.url, {
      query: 'mutation { login(input: { emial: "a@b.co", password: "password1" }) { accessToken } }',
    });
    expect(messages(input.json)).not.toContain('Did you mean');
  });

  it('sends Strict-Transport-Security when the public URL is https', async () => {
    const response = await fetch(`${t.url}/healthz`);
    expect(response.headers.get('strict-transport-security')).toBe('max-age=31536000; includeSubDomains');
    expect((await fetch(`${open.url}/healthz`)).headers.get('strict-transport-security')).toBeNull();
  });

  it('still answers a well-formed login normally', async () => {
    const response = await t.gql(
      'mutation { login(input: { email: "a@b.co", password: "password1" }) { accessToken } }',
    );
    expect(errorCode(response)).toBe('INVALID_CREDENTIALS');
  });
});
