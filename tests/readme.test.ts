// The first session a newcomer runs: the README's curl block, executed as written with bash, curl and jq against
// a fresh server; and the example document GraphiQL opens with, run step by step.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRAPHIQL_EXAMPLE } from '../src/http/graphiql-example.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { extensionsOf } from './support/graphql.ts';
import { serviceAvailable, servicesRequired } from './support/services.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The first ```sh block after `heading`. */
function shellBlock(heading: string): string {
  const section = readme.slice(readme.indexOf(`\n${heading}\n`));
  const match = /```sh\n([\s\S]*?)```/.exec(section);
  if (!match?.[1]) throw new Error(`no sh block under ${heading}`);
  return match[1];
}

function bash(script: string, env: Record<string, string>) {
  return new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.once('close', (code) => resolve({ code, out, err }));
  });
}

describe('README', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  it('runs the curl session as written: register, me over POST and GET, refresh, logout, then refused', async () => {
    const tools = ['curl', 'jq'].filter((tool) => !serviceAvailable(tool));
    if (tools.length > 0 && !servicesRequired) return;
    expect(tools).toEqual([]);
    const run = await bash(shellBlock('## Or with curl'), { API: t.url });
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    const lines = run.out.trimEnd().split('\n');
    expect(lines).toHaveLength(5);
    const [me, getMe, getAnonymous, logout] = lines.slice(0, 4).map((line) => JSON.parse(line));
    expect(me).toEqual({ data: { me: { id: expect.any(String), email: 'ada@example.com' } } });
    expect(getMe).toEqual({ data: { me: { email: 'ada@example.com' } } });
    expect(getAnonymous).toEqual({ data: { __typename: 'Query' } });
    expect(logout).toEqual({ data: { logout: true } });
    expect(lines[4]).toBe('SESSION_REVOKED');
  });

  it('opens GraphiQL with the example document, whose steps run as its comments say', async () => {
    const page = await (await fetch(`${t.url}/graphql`, { headers: { accept: 'text/html' } })).text();
    const options = /<script id="graphiql-options" type="application\/json">(.*?)<\/script>/s.exec(page)?.[1];
    expect(JSON.parse(options ?? '{}').defaultQuery).toBe(GRAPHIQL_EXAMPLE);

    const run = (operationName: string, token?: string) =>
      fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({
          query: GRAPHIQL_EXAMPLE.replaceAll('ada@example.com', 'grace@example.com'),
          operationName,
        }),
      }).then((response) => response.json() as Promise<{ data?: any; errors?: any[] }>);
    const registered = await run('Register');
    expect(registered.errors).toBeUndefined();
    const token = registered.data.register.accessToken as string;
    expect((await run('Me', token)).data.me).toMatchObject({
      email: 'grace@example.com',
      sessions: [{ current: true }],
    });
    expect((await run('Logout', token)).data).toEqual({ logout: true });
    expect(extensionsOf((await run('Me', token)) as never)).toMatchObject({ reason: 'SESSION_REVOKED' });
  });
});
