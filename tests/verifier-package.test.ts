// The verifier package as a service gets it: `npm pack` of packages/verifier installed into a fresh project with
// graphql-yoga from the registry; jose and graphql-ws are its only dependencies and no server package comes along;
// a file using every export type-checks under tsc --strict; and a tiny Yoga service in its own process, using the
// plugin, serves a valid token, refuses it (SESSION_REVOKED) once its session is logged out, and exits on SIGTERM
// after close(); and (issue 15) a second subgraph in its own process with the package, composed with ours behind a
// real @apollo/gateway, refuses tokens on the first request after logout, revokeSession, setUserDisabled and
// setClientDisabled answer, refuses one revoked before it started, fails closed while our service is down past
// maxStaleness and recovers when it is back.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { composeServices } from '@apollo/composition';
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signInAsAdmin } from './support/admin.ts';
import { databaseUrl, startTestApp, type TestApp } from './support/app.ts';
import { createTestClient } from './support/client-credentials.ts';
import { ed25519Pem } from './support/expect.ts';
import {
  type Gql,
  type GraphQLResponse,
  graphqlClient,
  type Payload,
  registerUser,
  revokeSession,
  signIn,
} from './support/graphql.ts';
import { installedPackages, installProject, type PackedPackage, packWorkspace } from './support/packages.ts';
import { freePort } from './support/services.ts';
import { eventually } from './support/subscriptions.ts';

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

/** A second subgraph (orders) that trusts our tokens through the package's plugin, for the gateway test. */
const SUBGRAPH_SOURCE = `
import { createServer } from 'node:http';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { createYoga } from 'graphql-yoga';
import { createTokenVerifier, useTokenVerifier } from 'graphql-auth-verifier';

const verifier = createTokenVerifier({
  issuer: process.env.ISSUER,
  audience: process.env.AUDIENCE,
  graphqlUrl: process.env.GRAPHQL_URL,
  clientId: process.env.CLIENT_ID,
  clientSecret: process.env.CLIENT_SECRET,
  maxStaleness: Number(process.env.MAX_STALENESS),
});
const mine = (context) => (context.auth ? ['order-of-' + context.auth.sub] : null);
const schema = buildSubgraphSchema({
  typeDefs: parse(process.env.TYPE_DEFS),
  resolvers: {
    Query: { myOrders: (_root, _args, context) => mine(context) },
    User: {
      __resolveReference: (reference) => reference,
      orders: (user, _args, context) => (context.auth?.sub === user.id ? mine(context) : null),
    },
  },
});
const yoga = createYoga({ schema, plugins: [useTokenVerifier(verifier)], logging: false });
const server = createServer(yoga);
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
process.once('SIGTERM', () => {
  verifier.close();
  server.close();
});
`;

const ORDERS_TYPE_DEFS = `
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.6", import: ["@key"])
  type User @key(fields: "id") { id: ID! orders: [String!] }
  type Query { myOrders: [String!] }
`;

/** Runs `file` of the fresh project with Node in its own process; resolves once it prints its port. */
async function spawnService(file: string, env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [file], {
    cwd: project,
    env: { PATH: process.env.PATH, ...env },
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
    child.once('exit', (code) => fail(new Error(`${file} exited with ${code}:\n${output}`)));
  });
  return { child, url: `http://127.0.0.1:${port}/graphql` };
}

const work = mkdtempSync(join(tmpdir(), 'verifier-package-'));
const project = join(work, 'service');
let packed: PackedPackage;

beforeAll(() => {
  mkdirSync(project);
  packed = packWorkspace('graphql-auth-verifier', work);
  // @apollo/subgraph at the server's own version: 2.15.1 treats buildSubgraphSchema({ typeDefs, resolvers }) as SDL.
  installProject(project, [packed.tarball, 'graphql-yoga@^5', 'graphql@^16', '@apollo/subgraph@2.14.4']);
  mkdirSync(join(project, 'src'));
  writeFileSync(join(project, 'src', 'uses.ts'), USES_SOURCE);
  writeFileSync(join(project, 'service.mjs'), SERVICE_SOURCE);
  writeFileSync(join(project, 'subgraph.mjs'), SUBGRAPH_SOURCE);
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
      ({ child, url: serviceUrl } = await spawnService('service.mjs', {
        ISSUER: 'https://auth.test',
        AUDIENCE: 'https://api.test',
        GRAPHQL_URL: `${t.url}/graphql`,
        CLIENT_ID: client.id,
        CLIENT_SECRET: client.secret ?? '',
      }));
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
  describe('a second subgraph with the package, composed with ours behind a real @apollo/gateway', () => {
    const dir = mkdtempSync(join(tmpdir(), 'verifier-gateway-'));
    const key = ed25519Pem();
    let authPort: number;
    let authDatabase: string;
    let auth: TestApp | undefined;
    let admin: Payload;
    let orders: ChildProcess;
    let gatewayServer: ApolloServer<{ authorization?: string }>;
    let gateway: Gql;
    let revokedEarly: Payload;

    const startAuth = async () => {
      auth = await startTestApp({ databaseUrl: authDatabase, env: { PORT: String(authPort), JWT_PRIVATE_KEY: key } });
      return auth;
    };
    const app = () => auth as TestApp;

    beforeAll(async () => {
      authPort = await freePort();
      authDatabase = await databaseUrl('sqlite', dir);
      await startAuth();
      admin = await signInAsAdmin(app());
      const client = await createTestClient(app().gql, admin.accessToken, { id: 'orders', scopes: ['sessions:feed'] });
      // Revoked before the subgraph (and its verifier) started: it learns of it from Query.revocations.
      revokedEarly = await registerUser(app().gql);
      expect((await app().gql('mutation { logout }', {}, { token: revokedEarly.accessToken })).data).toEqual({
        logout: true,
      });
      const subgraph = await spawnService('subgraph.mjs', {
        ISSUER: 'https://auth.test',
        AUDIENCE: 'https://api.test',
        GRAPHQL_URL: `${app().url}/graphql`,
        CLIENT_ID: client.id,
        CLIENT_SECRET: client.secret ?? '',
        MAX_STALENESS: '3000',
        TYPE_DEFS: ORDERS_TYPE_DEFS,
      });
      orders = subgraph.child;

      const service = await app().gql<{ _service: { sdl: string } }>('{ _service { sdl } }');
      const composed = composeServices([
        { name: 'auth', url: `${app().url}/graphql`, typeDefs: parse(service.data?._service.sdl as string) },
        { name: 'orders', url: subgraph.url, typeDefs: parse(ORDERS_TYPE_DEFS) },
      ]);
      if (composed.errors) throw new Error(composed.errors.map((e) => e.message).join('\n'));
      gatewayServer = new ApolloServer<{ authorization?: string }>({
        gateway: new ApolloGateway({
          supergraphSdl: composed.supergraphSdl,
          buildService: ({ url }) =>
            new RemoteGraphQLDataSource<{ authorization?: string }>({
              url,
              willSendRequest({ request, context }) {
                if (context.authorization) request.http?.headers.set('authorization', context.authorization);
              },
            }),
        }),
      });
      const { url } = await startStandaloneServer(gatewayServer, {
        listen: { port: 0, host: '127.0.0.1' },
        context: async ({ req }) => ({ authorization: req.headers.authorization }),
      });
      gateway = graphqlClient(url.replace(/\/$/, ''));
    }, 120_000);

    afterAll(async () => {
      await gatewayServer?.stop();
      if (orders && orders.exitCode === null) orders.kill('SIGKILL');
      await auth?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    /** `{ myOrders }` through the gateway: only the orders subgraph answers it. */
    const myOrders = (token: string) => gateway<{ myOrders: string[] | null }>('{ myOrders }', {}, { token });
    const refusedBy = (response: GraphQLResponse) => {
      expect(response.data?.myOrders ?? null).toBeNull();
      expect(response.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      return response.errors?.[0]?.extensions?.reason as string;
    };

    it('answers a query across both subgraphs with a valid token', async () => {
      const user = await registerUser(app().gql);
      const result = await gateway('{ me { id email orders } }', {}, { token: user.accessToken });
      expect(result.errors).toBeUndefined();
      expect(result.data).toEqual({
        me: { id: user.user.id, email: user.user.email, orders: [`order-of-${user.user.id}`] },
      });
    });

    it('refuses a token revoked before the subgraph started', async () => {
      expect(refusedBy(await myOrders(revokedEarly.accessToken))).toBe('SESSION_REVOKED');
    });

    it('refuses the token on the first request after logout, revokeSession and setUserDisabled answered', async () => {
      const loggedOut = await registerUser(app().gql);
      expect((await myOrders(loggedOut.accessToken)).data).toEqual({ myOrders: [`order-of-${loggedOut.user.id}`] });
      expect((await app().gql('mutation { logout }', {}, { token: loggedOut.accessToken })).data).toEqual({
        logout: true,
      });
      expect(refusedBy(await myOrders(loggedOut.accessToken))).toBe('SESSION_REVOKED');

      const revoked = await registerUser(app().gql);
      const other = await signIn(app().gql, revoked.user.email, revoked.password);
      expect((await myOrders(revoked.accessToken)).errors).toBeUndefined();
      const revocation = await revokeSession(app().gql, revoked.session.id, other.accessToken);
      expect(revocation.data).toEqual({ revokeSession: true });
      expect(refusedBy(await myOrders(revoked.accessToken))).toBe('SESSION_REVOKED');
      expect((await myOrders(other.accessToken)).data).toEqual({ myOrders: [`order-of-${revoked.user.id}`] });

      const disabled = await registerUser(app().gql);
      expect((await myOrders(disabled.accessToken)).errors).toBeUndefined();
      const setUserDisabled = await app().gql(
        'mutation($id: ID!) { setUserDisabled(userId: $id, disabled: true) { id disabled } }',
        { id: disabled.user.id },
        { token: admin.accessToken },
      );
      expect(setUserDisabled.data).toEqual({ setUserDisabled: { id: disabled.user.id, disabled: true } });
      expect(refusedBy(await myOrders(disabled.accessToken))).toBe('SESSION_REVOKED');
    });

    it('refuses the tokens of a client on the first request after setClientDisabled answered', async () => {
      await createTestClient(app().gql, admin.accessToken, { id: 'shop-web', type: 'PUBLIC' });
      const user = await registerUser(app().gql);
      const login = await app().gql<{ login: { accessToken: string } }>(
        'mutation($input: LoginInput!) { login(input: $input) { accessToken } }',
        { input: { email: user.user.email, password: user.password, clientId: 'shop-web' } },
      );
      const token = login.data?.login.accessToken as string;
      expect((await myOrders(token)).data).toEqual({ myOrders: [`order-of-${user.user.id}`] });
      const disabled = await app().gql(
        'mutation { setClientDisabled(id: "shop-web", disabled: true) { id disabled } }',
        {},
        { token: admin.accessToken },
      );
      expect(disabled.data).toEqual({ setClientDisabled: { id: 'shop-web', disabled: true } });
      // Its session was revoked with it (the server itself answers SESSION_REVOKED); whichever of the session's
      // and the client's revocations arrives first refuses the token.
      expect(['SESSION_REVOKED', 'CLIENT_DISABLED']).toContain(refusedBy(await myOrders(token)));
    });

    it('refuses everything once our service has been stopped longer than maxStaleness, and recovers', async () => {
      const user = await registerUser(app().gql);
      expect((await myOrders(user.accessToken)).errors).toBeUndefined();
      await app().close();
      auth = undefined;
      const reasonNow = async () => {
        const response = await myOrders(user.accessToken);
        return response.errors ? (response.errors[0]?.extensions?.reason as string) : 'accepted';
      };
      await eventually(async () => (await reasonNow()) === 'REVOCATION_FEED_STALE', 15_000);
      expect(refusedBy(await myOrders(admin.accessToken))).toBe('REVOCATION_FEED_STALE');

      await startAuth();
      await eventually(async () => (await reasonNow()) === 'accepted', 20_000);
      expect((await myOrders(user.accessToken)).data).toEqual({ myOrders: [`order-of-${user.user.id}`] });
      // Live again: a logout on the restarted service is refused on the next request.
      expect((await app().gql('mutation { logout }', {}, { token: user.accessToken })).data).toEqual({
        logout: true,
      });
      expect(refusedBy(await myOrders(user.accessToken))).toBe('SESSION_REVOKED');
    }, 60_000);
  });
});
