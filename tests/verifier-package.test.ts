// The verifier package as a service gets it: `npm pack` of packages/verifier installed into a fresh project with
// graphql-yoga from the registry; jose and graphql-ws are its only dependencies and no server package comes along;
// a file using every export type-checks under tsc --strict; and a tiny Yoga service in its own process, using the
// plugin, serves a valid token, refuses it (SESSION_REVOKED) once its session is logged out, and exits on SIGTERM
// after close().
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signInAsAdmin } from './support/admin.ts';
import { startTestApp, type TestApp } from './support/app.ts';
import { createTestClient } from './support/client-credentials.ts';
import { registerUser } from './support/graphql.ts';
import { installedPackages, installProject, type PackedPackage, packWorkspace } from './support/packages.ts';

const ROOT = resolve(import.meta.dirname, '..');

/** Packages only the server needs: none may come with the verifier. */
const SERVER_ONLY = [
  'graphql-auth-server',
  'bcrypt',
  'mysql2',
  'ioredis',
  'nodemailer',
  'pino',
  'kysely',
  'openid-client',
  'prom-client',
  'rate-limiter-flexible',
  'zod',
  'ws',
];

/** Every export of both entry points, used as a service's code and tests would. */
const USES_SOURCE = `
import {
  authenticate,
  createTokenVerifier,
  type Revocation,
  type ServiceClaims,
  type TokenClaims,
  type TokenVerifier,
  type TokenVerifierContext,
  type TokenVerifierOptions,
  type TokenVerifierPlugin,
  TokenVerificationError,
  type UserClaims,
  useTokenVerifier,
  VERIFICATION_REASONS,
  type VerificationReason,
  type VerifiedClaims,
  type Verifies,
  type VerifierStatus,
} from 'graphql-auth-verifier';
import {
  createTestIssuer,
  type ServiceTokenOptions,
  type TestIssuer,
  type TestIssuerOptions,
  type TestVerifier,
  type UserTokenOptions,
} from 'graphql-auth-verifier/testing';

const options: TokenVerifierOptions = {
  issuer: 'https://auth.example.com',
  audience: 'https://orders.example.com',
  graphqlUrl: 'https://auth.example.com/graphql',
  clientId: 'orders-api',
  clientSecret: 'secret',
  maxStaleness: 30_000,
};
export const verifier: TokenVerifier = createTokenVerifier(options);
export const plugin: TokenVerifierPlugin = useTokenVerifier(verifier);
const status: VerifierStatus = verifier.status();
const staleness: number = status.stalenessMs;
const reasons: readonly VerificationReason[] = VERIFICATION_REASONS;

export function scopesOf(claims: VerifiedClaims): string[] {
  if (claims.kind === 'user') {
    const user: UserClaims = claims;
    return [user.sid, ...user.roles, ...user.scopes];
  }
  const service: ServiceClaims = claims;
  const base: TokenClaims = service;
  return [base.client_id, ...service.scopes];
}

export async function handler(header: string | undefined): Promise<number> {
  try {
    const context: TokenVerifierContext = { auth: await authenticate(verifier, header) };
    return context.auth ? 200 : 401;
  } catch (error) {
    if (error instanceof TokenVerificationError && error.code === 'UNAUTHENTICATED') {
      const reason: VerificationReason = error.reason;
      return reason === 'REVOCATION_FEED_STALE' ? 503 : 401;
    }
    throw error;
  }
}

export async function unitTest(): Promise<string> {
  const issuerOptions: TestIssuerOptions = { audience: 'https://orders.example.com' };
  const issuer: TestIssuer = await createTestIssuer(issuerOptions);
  const user: UserTokenOptions = { userId: 'u1', scopes: ['orders.read'] };
  const service: ServiceTokenOptions = { clientId: 'billing' };
  const test: TestVerifier = issuer.verifier;
  const any: Verifies = test;
  const revocation: Revocation = { sessionId: 's1' };
  test.revoke(revocation);
  const claims = await any.verify(await issuer.userToken(user));
  await test.verify(await issuer.serviceToken(service));
  return claims.sub + issuer.jwks.keys.length + staleness + reasons.length;
}
`;

/** A tiny service: Yoga with the plugin; prints its port; closes the verifier and the server on SIGTERM. */
const SERVICE_SOURCE = `
import { createServer } from 'node:http';
import { createSchema, createYoga } from 'graphql-yoga';
import { createTokenVerifier, useTokenVerifier } from 'graphql-auth-verifier';

const verifier = createTokenVerifier({
  issuer: process.env.ISSUER,
  audience: process.env.AUDIENCE,
  graphqlUrl: process.env.GRAPHQL_URL,
  clientId: process.env.CLIENT_ID,
  clientSecret: process.env.CLIENT_SECRET,
  maxStaleness: 10_000,
});
const yoga = createYoga({
  schema: createSchema({
    typeDefs: 'type Query { whoami: String  scopes: [String!] }',
    resolvers: {
      Query: {
        whoami: (_root, _args, context) => context.auth?.sub ?? null,
        scopes: (_root, _args, context) => (context.auth ? [...context.auth.scopes].sort() : null),
      },
    },
  }),
  plugins: [useTokenVerifier(verifier)],
  logging: false,
});
const server = createServer(yoga);
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
process.once('SIGTERM', () => {
  verifier.close();
  server.close();
});
`;

const work = mkdtempSync(join(tmpdir(), 'verifier-package-'));
const project = join(work, 'service');
let packed: PackedPackage;

beforeAll(() => {
  mkdirSync(project);
  packed = packWorkspace('graphql-auth-verifier', work);
  installProject(project, [packed.tarball, 'graphql-yoga@^5', 'graphql@^16']);
  mkdirSync(join(project, 'src'));
  writeFileSync(join(project, 'src', 'uses.ts'), USES_SOURCE);
  writeFileSync(join(project, 'service.mjs'), SERVICE_SOURCE);
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the packed verifier package in a fresh project', () => {
  it('packs built JavaScript, declarations and the README, and no sources', () => {
    expect(packed.files).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'dist/index.js',
        'dist/index.d.ts',
        'dist/testing.js',
        'dist/testing.d.ts',
      ]),
    );
    expect(
      packed.files.filter((file) => !file.startsWith('dist/') && !/^(package\.json|README\.md|LICENSE)$/.test(file)),
    ).toEqual([]);
    for (const file of packed.files.filter((f) => f.endsWith('.js'))) {
      const text = readFileSync(join(project, 'node_modules', 'graphql-auth-verifier', file), 'utf8');
      expect(text).not.toMatch(/from\s+['"][^'"]+\.ts['"]/);
    }
  });

  it('depends on jose and graphql-ws only, and brings no server package', () => {
    const manifest = JSON.parse(
      readFileSync(join(project, 'node_modules', 'graphql-auth-verifier', 'package.json'), 'utf8'),
    );
    expect(Object.keys(manifest.dependencies).sort()).toEqual(['graphql-ws', 'jose']);
    expect(manifest.peerDependencies ?? {}).toEqual({});
    const installed = installedPackages(project);
    expect(installed.has('jose')).toBe(true);
    expect(installed.has('graphql-ws')).toBe(true);
    expect(SERVER_ONLY.filter((name) => installed.has(name))).toEqual([]);
    expect([...installed].filter((name) => name.startsWith('@mikro-orm/') || name.startsWith('@pothos/'))).toEqual([]);
  });

  it('type-checks a file that uses every export under tsc --strict (NodeNext and Bundler)', () => {
    const base = {
      target: 'ES2022',
      lib: ['ES2022', 'DOM'],
      types: [],
      strict: true,
      noEmit: true,
      verbatimModuleSyntax: true,
      exactOptionalPropertyTypes: true,
    };
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { ...base, module: 'NodeNext', moduleResolution: 'NodeNext' },
        include: ['src'],
      }),
    );
    writeFileSync(
      join(project, 'tsconfig.bundler.json'),
      JSON.stringify({ compilerOptions: { ...base, module: 'ESNext', moduleResolution: 'Bundler' }, include: ['src'] }),
    );
    for (const config of ['tsconfig.json', 'tsconfig.bundler.json']) {
      let output = '';
      try {
        execFileSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', config], { cwd: project, stdio: 'pipe' });
      } catch (error) {
        output = String((error as { stdout?: Buffer }).stdout);
      }
      expect(output).toBe('');
    }
  }, 120_000);

  describe('a tiny Yoga service using the plugin, in its own process', () => {
    let t: TestApp;
    let child: ChildProcess;
    let serviceUrl: string;

    beforeAll(async () => {
      t = await startTestApp();
      const admin = await signInAsAdmin(t);
      const client = await createTestClient(t.gql, admin.accessToken, { id: 'orders-api', scopes: ['sessions:feed'] });
      child = spawn(process.execPath, ['service.mjs'], {
        cwd: project,
        env: {
          PATH: process.env.PATH,
          ISSUER: 'https://auth.test',
          AUDIENCE: 'https://api.test',
          GRAPHQL_URL: `${t.url}/graphql`,
          CLIENT_ID: client.id,
          CLIENT_SECRET: client.secret ?? '',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stderr?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      const port = await new Promise<number>((done, fail) => {
        child.stdout?.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          const match = /\{"port":(\d+)\}/.exec(output);
          if (match) done(Number(match[1]));
        });
        child.once('exit', (code) => fail(new Error(`the service exited with ${code}:\n${output}`)));
      });
      serviceUrl = `http://127.0.0.1:${port}/graphql`;
    }, 60_000);

    afterAll(async () => {
      if (child && child.exitCode === null) child.kill('SIGKILL');
      await t?.close();
    });

    const ask = async (token?: string) => {
      const response = await fetch(serviceUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ query: '{ whoami scopes }' }),
      });
      return (await response.json()) as { data?: unknown; errors?: { extensions?: unknown }[] };
    };

    it('serves a valid token, anonymous without one, and refuses it once its session is logged out', async () => {
      const user = await registerUser(t.gql);
      expect(await ask(user.accessToken)).toEqual({
        data: {
          whoami: user.user.id,
          scopes: ['profile:read', 'profile:write', 'sessions:read', 'sessions:write'],
        },
      });
      expect(await ask()).toEqual({ data: { whoami: null, scopes: null } });
      const logout = await t.gql('mutation { logout }', {}, { token: user.accessToken });
      expect(logout.data).toEqual({ logout: true });
      const refused = await ask(user.accessToken);
      expect(refused.errors?.[0]?.extensions).toEqual({ code: 'UNAUTHENTICATED', reason: 'SESSION_REVOKED' });
      expect(refused.data ?? null).toBeNull();
    });

    it('exits on SIGTERM once it has closed the verifier and its server (no socket or timer left)', async () => {
      const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }, 20_000);
  });
});
