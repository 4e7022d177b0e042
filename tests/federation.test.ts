// Federation 2: our SDL composed with a second subgraph that extends User, served by a real Apollo gateway
// that forwards Authorization; the other subgraph verifies our tokens itself through the JWKS.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { composeServices } from '@apollo/composition';
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { createYoga } from 'graphql-yoga';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { errorCode, type Gql, graphqlClient, type Payload, registerUser } from './support/graphql.ts';

interface GatewayContext {
  authorization?: string;
}

/** A second subgraph: favourite colours, for the holder of a token it has verified against our JWKS. */
function startColoursSubgraph(auth: TestApp) {
  const jwks = createRemoteJWKSet(new URL(`${auth.url}/.well-known/jwks.json`));
  const colours = new Map<string, string>();
  const verifiedSubjects: string[] = [];
  let featuredUserId = '';
  const schema = buildSubgraphSchema({
    typeDefs: parse(`
      extend schema @link(url: "https://specs.apollo.dev/federation/v2.6", import: ["@key"])
      type User @key(fields: "id") {
        id: ID!
        "Only for the account holder."
        favouriteColour: String
      }
      type Query {
        featuredUser: User
      }
    `),
    resolvers: {
      Query: { featuredUser: () => (featuredUserId ? { __typename: 'User', id: featuredUserId } : null) },
      User: {
        __resolveReference: (reference: { id: string }) => reference,
        favouriteColour: (user: { id: string }, _args: unknown, context: { subject: string | null }) =>
          context.subject === user.id ? (colours.get(user.id) ?? null) : null,
      },
    } as never,
  });
  const yoga = createYoga<Record<string, unknown>, { subject: string | null }>({
    schema,
    logging: false,
    landingPage: false,
    graphiql: false,
    context: async ({ request }) => {
      const header = request.headers.get('authorization');
      if (!header) return { subject: null };
      const { payload } = await jwtVerify(header.replace(/^Bearer /i, ''), jwks, {
        issuer: auth.app.config.issuer,
        audience: auth.app.config.audience,
        algorithms: [auth.app.config.jwt.alg],
        typ: 'at+jwt',
      });
      verifiedSubjects.push(String(payload.sub));
      return { subject: String(payload.sub) };
    },
  });
  const server = createServer(yoga);
  return {
    colours,
    verifiedSubjects,
    feature: (id: string) => {
      featuredUserId = id;
    },
    async listen(): Promise<{ server: Server; url: string }> {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql` };
    },
  };
}

describe('federation', () => {
  let auth: TestApp;
  let colours: ReturnType<typeof startColoursSubgraph>;
  let coloursServer: Server;
  let gatewayServer: ApolloServer<GatewayContext>;
  let gateway: Gql;

  beforeAll(async () => {
    auth = await startTestApp();
    colours = startColoursSubgraph(auth);
    const subgraph = await colours.listen();
    coloursServer = subgraph.server;

    // The gateway operator's step: compose the subgraphs' SDL (ours straight from `_service { sdl }`).
    const service = await auth.gql<{ _service: { sdl: string } }>('{ _service { sdl } }');
    const composed = composeServices([
      { name: 'auth', url: `${auth.url}/graphql`, typeDefs: parse(service.data?._service.sdl as string) },
      {
        name: 'colours',
        url: subgraph.url,
        typeDefs: parse(`
          extend schema @link(url: "https://specs.apollo.dev/federation/v2.6", import: ["@key"])
          type User @key(fields: "id") { id: ID! favouriteColour: String }
          type Query { featuredUser: User }
        `),
      },
    ]);
    if (composed.errors) throw new Error(composed.errors.map((e) => e.message).join('\n'));

    gatewayServer = new ApolloServer<GatewayContext>({
      gateway: new ApolloGateway({
        supergraphSdl: composed.supergraphSdl,
        // Forward the caller's Authorization to every subgraph: each one decides what the token may see.
        buildService: ({ url }) =>
          new RemoteGraphQLDataSource<GatewayContext>({
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
  });

  afterAll(async () => {
    await gatewayServer?.stop();
    await new Promise((resolve) => coloursServer?.close(resolve));
    await auth?.close();
  });

  it('serves a Federation 2 SDL with @link and User @key(fields: "id") from _service', async () => {
    const result = await auth.gql<{ _service: { sdl: string } }>('{ _service { sdl } }');
    const sdl = result.data?._service.sdl as string;
    expect(sdl).toContain('@link(url: "https://specs.apollo.dev/federation/v2.6", import: ["@key"])');
    expect(sdl).toMatch(/type User\s+@key\(fields: "id"\)/);
  });

  it('resolves me with a field from another subgraph, which verified the forwarded token through our JWKS', async () => {
    const ada = await registerUser(auth.gql, { displayName: 'Ada' });
    colours.colours.set(ada.user.id, 'teal');
    const before = colours.verifiedSubjects.length;
    const result = await gateway('{ me { id email displayName favouriteColour } }', {}, { token: ada.accessToken });
    expect(result.errors).toBeUndefined();
    expect(result.data).toEqual({
      me: { id: ada.user.id, email: ada.user.email, displayName: 'Ada', favouriteColour: 'teal' },
    });
    expect(colours.verifiedSubjects.slice(before)).toEqual([ada.user.id]);
  });

  it('answers me as null for an anonymous request through the gateway', async () => {
    const result = await gateway('{ me { id email } }');
    expect(result.errors).toBeUndefined();
    expect(result.data).toEqual({ me: null });
  });

  it('resolves a User referenced by another subgraph through _entities for the account holder', async () => {
    const grace = await registerUser(auth.gql, { displayName: 'Grace' });
    colours.colours.set(grace.user.id, 'amber');
    colours.feature(grace.user.id);
    const result = await gateway(
      '{ featuredUser { id email displayName favouriteColour } }',
      {},
      { token: grace.accessToken },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data).toEqual({
      featuredUser: { id: grace.user.id, email: grace.user.email, displayName: 'Grace', favouriteColour: 'amber' },
    });
  });

  it('applies the scope checks of user(id) to entities: no email for an anonymous or another caller', async () => {
    const owner = await registerUser(auth.gql);
    const stranger: Payload = await registerUser(auth.gql);
    colours.feature(owner.user.id);
    const query = '{ featuredUser { id email } }';

    const anonymous = await gateway(query);
    expect(anonymous.data?.featuredUser ?? null).toBeNull();
    expect(errorCode(anonymous)).toBe('UNAUTHENTICATED');
    expect(JSON.stringify(anonymous)).not.toContain(owner.user.email);

    const other = await gateway(query, {}, { token: stranger.accessToken });
    expect(other.data?.featuredUser ?? null).toBeNull();
    expect(errorCode(other)).toBe('FORBIDDEN');
    expect(JSON.stringify(other)).not.toContain(owner.user.email);

    // The same answers as asking us directly.
    const direct = await auth.gql(
      'query($reps: [_Any!]!) { _entities(representations: $reps) { ... on User { id email } } }',
      { reps: [{ __typename: 'User', id: owner.user.id }] },
      { token: stranger.accessToken },
    );
    expect(direct.data).toEqual({ _entities: [null] });
    expect(errorCode(direct)).toBe('FORBIDDEN');
    expect(errorCode(await auth.gql(`{ user(id: ${JSON.stringify(owner.user.id)}) { email } }`))).toBe(
      'UNAUTHENTICATED',
    );
  });

  it('resolves several representations in one _entities request', async () => {
    const a = await registerUser(auth.gql);
    const result = await auth.gql<{ _entities: { id: string; email: string }[] }>(
      `query($reps: [_Any!]!) { _entities(representations: $reps) { ... on User { id email } } }`,
      { reps: [1, 2, 3].map(() => ({ __typename: 'User', id: a.user.id })) },
      { token: a.accessToken },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data?._entities).toEqual([1, 2, 3].map(() => ({ id: a.user.id, email: a.user.email })));
  });
});
