import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const node = join(root, 'node_modules/.bin/node');

function run(script: string, cwd: string, env: Record<string, string> = {}) {
  return spawn(node, [join(root, script)], {
    cwd,
    env: { PATH: process.env.PATH, BCRYPT_COST: '4', LOG_LEVEL: 'warn', PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function waitForLine(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = pattern.exec(out);
      if (match) resolve(match[0]);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before printing ${pattern}: ${out}`)));
  });
}

const exitCode = (child: ChildProcess) => new Promise<number | null>((resolve) => child.once('exit', resolve));

describe('npm start on the embedded defaults', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'auth-start-'));
  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  it('migrates a new SQLite file under ./data, generates a dev key, serves, and prints the GraphiQL URL', async () => {
    const child = run('src/main.ts', cwd);
    try {
      const url = await waitForLine(child, /GraphiQL: (http:\/\/\S+\/graphql)/);
      const base = url.replace('GraphiQL: ', '').replace('/graphql', '');
      expect(existsSync(join(cwd, 'data/auth.sqlite'))).toBe(true);
      expect(readdirSync(join(cwd, 'data'))).toContain('dev-signing-key.eddsa.pem');
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(200);
      const jwks = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as { keys: unknown[] };
      expect(jwks.keys).toHaveLength(1);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exitCode(child)).toBe(0);
  });

  it('reports an up-to-date database on `npm run migrate` after start', async () => {
    const child = run('src/db/migrate-cli.ts', cwd);
    const out = waitForLine(child, /database is up to date/);
    expect(await out).toBe('database is up to date');
    expect(await exitCode(child)).toBe(0);
  });
});
