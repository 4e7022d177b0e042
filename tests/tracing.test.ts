// OpenTelemetry tracing when OTEL_EXPORTER_OTLP_ENDPOINT is set: spans of GraphQL operations arrive at a real
// OTLP/HTTP endpoint (a node:http server recording POST /v1/traces), without a password, token or document.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { uniqueEmail } from './support/graphql.ts';

interface OtlpSpan {
  name: string;
  kind: number;
  attributes: { key: string; value: { stringValue?: string } }[];
  events?: { name: string; attributes: { key: string }[] }[];
}
interface OtlpBody {
  resourceSpans: {
    resource: { attributes: { key: string; value: { stringValue?: string } }[] };
    scopeSpans: { spans: OtlpSpan[] }[];
  }[];
}

describe('tracing', () => {
  const bodies: { path: string; contentType: string | undefined; text: string }[] = [];
  let collector: Server;
  let t: TestApp | undefined;

  beforeAll(async () => {
    collector = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      req.on('end', () => {
        bodies.push({ path: req.url ?? '', contentType: req.headers['content-type'], text });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const address = collector.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    t = await startTestApp({
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}/`, OTEL_SERVICE_NAME: 'auth-under-test' },
    });
  });
  afterAll(async () => {
    await t?.close();
    await new Promise((resolve) => collector.close(resolve));
  });

  it('exports a server span per GraphQL operation, named by type and name, with no secret in it', async () => {
    const app = t as TestApp;
    const password = 'tracing-password-Q7';
    const registered = await app.gql<{ register: { accessToken: string } }>(
      'mutation SignUp($input: RegisterInput!) { register(input: $input) { accessToken } }',
      { input: { email: uniqueEmail('trace'), password } },
    );
    const token = registered.data?.register.accessToken as string;
    expect(token).toBeTypeOf('string');
    await app.gql('query Me { me { id } }', {}, { token });
    const failed = await app.gql(
      'mutation Wrong { login(input: { email: "x@example.com", password: "wrong-password-Q7" }) { accessToken } }',
    );
    expect(failed.errors?.[0]?.extensions?.code).toBe('INVALID_CREDENTIALS');
    // Closing the app shuts the SDK down, which sends every buffered span.
    await app.close();
    t = undefined;

    expect(bodies.length).toBeGreaterThan(0);
    for (const body of bodies) {
      expect(body.path).toBe('/v1/traces');
      expect(body.contentType).toMatch(/^application\/json/);
    }
    const exported = bodies.map((body) => JSON.parse(body.text) as OtlpBody);
    const resources = exported.flatMap((body) => body.resourceSpans);
    const spans = resources.flatMap((resource) => resource.scopeSpans.flatMap((scope) => scope.spans));
    const attribute = (span: OtlpSpan | undefined, key: string) =>
      span?.attributes.find((entry) => entry.key === key)?.value.stringValue;

    expect(spans.map((span) => span.name).sort()).toEqual(['mutation.SignUp', 'mutation.Wrong', 'query.Me']);
    const signUp = spans.find((span) => span.name === 'mutation.SignUp');
    expect(signUp?.kind).toBe(2); // SERVER
    expect(attribute(signUp, 'graphql.execute.operationName')).toBe('SignUp');
    expect(attribute(signUp, 'graphql.execute.operationType')).toBe('mutation');
    expect(resources[0]?.resource.attributes.find((entry) => entry.key === 'service.name')?.value.stringValue).toBe(
      'auth-under-test',
    );
    // The failed sign-in is marked, with the exception's type but not its text.
    const wrong = spans.find((span) => span.name === 'mutation.Wrong');
    expect(wrong?.events?.map((event) => [event.name, event.attributes.map((entry) => entry.key)])).toEqual([
      ['exception', ['exception.type']],
    ]);
    const everything = bodies.map((body) => body.text).join('\n');
    expect(everything).not.toContain(password);
    expect(everything).not.toContain('wrong-password-Q7');
    expect(everything).not.toContain(token);
    expect(everything).not.toContain('RegisterInput');
  });
});
