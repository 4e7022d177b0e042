// Bench child: the floor for `me`, bare Yoga on node:http whose context verifies the Bearer JWT with jose, no database.
import { createServer } from 'node:http';
import { createSchema, createYoga } from 'graphql-yoga';
import { importSPKI, type JWTPayload, jwtVerify } from 'jose';
import { listenUntilStopped } from './children.ts';

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

const key = await importSPKI(env('FLOOR_PUBLIC_KEY'), 'EdDSA');
const verifyOptions = { algorithms: ['EdDSA'], issuer: env('ISSUER'), audience: env('AUDIENCE'), typ: 'at+jwt' };

const yoga = createYoga<object, { claims: JWTPayload | null }>({
  landingPage: false,
  graphiql: false,
  schema: createSchema<{ claims: JWTPayload | null }>({
    typeDefs: 'type Query { me: User } type User { id: ID! email: String! roles: [String!]! }',
    resolvers: {
      Query: {
        // Our access tokens carry no email; the floor still answers from the claims alone (an empty email unless a
        // token has one), since a floor is the least work a `me` can cost.
        me: (_root, _args, { claims }) =>
          claims && {
            id: claims.sub,
            email: typeof claims.email === 'string' ? claims.email : '',
            roles: Array.isArray(claims.roles) ? claims.roles : [],
          },
      },
    },
  }),
  context: async ({ request }) => {
    const token = /^Bearer (.+)$/.exec(request.headers.get('authorization') ?? '')?.[1];
    return { claims: token ? (await jwtVerify(token, key, verifyOptions)).payload : null };
  },
});

const server = createServer(yoga);
await listenUntilStopped(server);
