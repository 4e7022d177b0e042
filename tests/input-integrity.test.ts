// API.md "Input integrity": every text argument of the schema (derived from the built schema, so a new field is
// covered without touching this file) refuses U+0000 and lone surrogates with BAD_USER_INPUT naming the field, from
// variables and from document literals, before anything runs; quotes and 10 kB strings reach the database as bound
// values. No payload gives an internal error or changes a row, on SQLite and MariaDB, anonymous or signed in.
import { randomUUID } from 'node:crypto';
import {
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
  GraphQLList,
  GraphQLNonNull,
  type GraphQLObjectType,
  GraphQLScalarType,
  getNamedType,
  isEnumType,
  isInputObjectType,
  isLeafType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { User } from '../src/db/entities.ts';
import { buildSchema } from '../src/schema/index.ts';
import { type Dialect, dialects, startTestApp, type TestApp } from './support/app.ts';
import { type GraphQLResponse, loginUser, registerUser } from './support/graphql.ts';

/** Refused everywhere, whatever the field: BAD_USER_INPUT naming it. */
const REFUSED = {
  nul: 'a\u0000b',
  loneHigh: 'abc\ud800',
  loneLow: '\udc00xyz',
  reversedPair: '\udc00\ud800',
};
/** Accepted as text by the transport; each field's own rules decide, but never an internal error. */
const ODD = {
  quote: "x' OR '1'='1",
  quoteInId: "x'OR'1'='1'--",
  doubleQuote: 'x" OR "1"="1"; DROP TABLE users; --',
  backslash: "\\'; --",
  long: 'é'.repeat(10_000),
  bidi: 'ada\u202e',
  questionMark: '? ?? \\?',
};

interface Slot {
  readonly root: 'query' | 'mutation';
  readonly field: GraphQLField<unknown, unknown>;
  readonly argument: GraphQLArgument;
  /** Input-object field names from the argument down to the string; empty for the argument itself. */
  readonly path: readonly string[];
  /** The name BAD_USER_INPUT must carry: the innermost argument or input field. */
  readonly name: string;
  readonly id: boolean;
}

const unwrap = (type: GraphQLInputType) => (type instanceof GraphQLNonNull ? type.ofType : type);
const isText = (type: GraphQLInputType) => {
  const named = getNamedType(type);
  return named instanceof GraphQLScalarType && ['String', 'ID'].includes(named.name);
};

/** Every place a string can go in the arguments of the root fields, through input objects and lists. */
function slots(): Slot[] {
  const schema = buildSchema();
  const found: Slot[] = [];
  const roots = [
    ['query', schema.getQueryType()],
    ['mutation', schema.getMutationType()],
  ] as const;
  for (const [root, type] of roots) {
    for (const field of Object.values((type as GraphQLObjectType).getFields())) {
      for (const argument of field.args) {
        const walk = (inputType: GraphQLInputType, path: string[], name: string, seen: Set<string>) => {
          const named = getNamedType(inputType);
          if (isText(inputType)) {
            found.push({ root, field, argument, path, name, id: named.name === 'ID' });
          } else if (isInputObjectType(named) && !seen.has(named.name)) {
            for (const inner of Object.values(named.getFields())) {
              walk(inner.type, [...path, inner.name], inner.name, new Set([...seen, named.name]));
            }
          }
        };
        walk(argument.type, [], argument.name, new Set());
      }
    }
  }
  return found;
}

/** A value of `type` that coerces, with `text` at `path` (when given). */
function fill(type: GraphQLInputType, name: string, path: readonly string[] | undefined, text: string): unknown {
  const inner = unwrap(type);
  if (inner instanceof GraphQLList) return [fill(inner.ofType, name, path, text)];
  if (path && path.length === 0 && isText(inner)) return text;
  if (isInputObjectType(inner)) {
    const value: Record<string, unknown> = {};
    for (const field of Object.values(inner.getFields())) {
      const onPath = path?.[0] === field.name ? path.slice(1) : undefined;
      if (onPath || (field.type instanceof GraphQLNonNull && field.defaultValue === undefined)) {
        value[field.name] = fill(field.type, field.name, onPath, text);
      }
    }
    return value;
  }
  const named = getNamedType(inner);
  if (isEnumType(named)) return named.getValues()[0]?.value;
  switch (named.name) {
    case 'Int':
    case 'Float':
      return 1;
    case 'Boolean':
      return false;
    case 'DateTime':
      return new Date().toISOString();
    case '_Any':
      return { __typename: 'User', id: randomUUID() };
    case 'String':
    case 'ID':
      // Plausible values, so that an odd value elsewhere in the input gets as far as the database.
      if (/email/i.test(name)) return `filler-${randomUUID().slice(0, 8)}@example.com`;
      // Not the callers' password: the sweep must not change it or delete the account.
      if (/password/i.test(name)) return 'not the password of anyone';
      return 'x';
    default:
      return {};
  }
}

/** The document and variables that put `text` in `slot`, as a variable or (top-level scalars) as a literal. */
function request(slot: Slot, text: string, literal: boolean) {
  const definitions: string[] = [];
  const passed: string[] = [];
  const variables: Record<string, unknown> = {};
  for (const argument of slot.field.args) {
    const target = argument === slot.argument;
    if (!target && !(argument.type instanceof GraphQLNonNull && argument.defaultValue === undefined)) continue;
    if (target && literal) {
      passed.push(`${argument.name}: ${JSON.stringify(text)}`);
      continue;
    }
    definitions.push(`$${argument.name}: ${argument.type}`);
    passed.push(`${argument.name}: $${argument.name}`);
    variables[argument.name] = fill(argument.type, argument.name, target ? slot.path : undefined, text);
  }
  const selection = isLeafType(getNamedType(slot.field.type)) ? '' : ' { __typename }';
  const head = definitions.length ? `(${definitions.join(', ')})` : '';
  return {
    query: `${slot.root}${head} { ${slot.field.name}(${passed.join(', ')})${selection} }`,
    variables,
  };
}

const describeSlot = (slot: Slot) => `${slot.field.name}(${[slot.argument.name, ...slot.path].join('.')})`;

function expectNoInternalError(response: GraphQLResponse, what: string) {
  expect(response.status, what).toBeLessThan(500);
  for (const error of response.errors ?? []) {
    expect(error.extensions?.code, `${what}: ${JSON.stringify(error)}`).not.toBe('INTERNAL_SERVER_ERROR');
  }
}

/** Runs `tasks` a few at a time: enough in flight to interleave, not so many that bcrypt queues for long. */
async function inBatches<T>(tasks: (() => Promise<T>)[], size = 8): Promise<T[]> {
  const results: T[] = [];
  for (let i = 0; i < tasks.length; i += size)
    results.push(...(await Promise.all(tasks.slice(i, i + size).map((task) => task()))));
  return results;
}

describe('the schema has text arguments to test', () => {
  it('finds every ID and String argument, inside input objects too', () => {
    const names = slots().map(describeSlot);
    for (const expected of [
      'revokeSession(id)',
      'user(id)',
      'users(after)',
      'users(query)',
      'setUserRoles(userId)',
      'setUserDisabled(userId)',
      'revokeUserSessions(userId)',
      'login(input.email)',
      'login(input.password)',
      'register(input.displayName)',
      'refresh(refreshToken)',
      'deleteAccount(password)',
    ]) {
      expect(names).toContain(expected);
    }
  });
});

describe.each(dialects())('input integrity on %s', (dialect: Dialect) => {
  let t: TestApp;
  let adminToken: string;
  let bystander: Awaited<ReturnType<typeof registerUser>>;

  /** Every row of every table, in a stable order. */
  async function snapshot(): Promise<string> {
    const connection = t.app.orm.em.fork().getConnection();
    const tables = (
      dialect === 'sqlite'
        ? await connection.execute<{ name: string }[]>(
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name",
          )
        : await connection.execute<{ name: string }[]>(
            'select table_name as name from information_schema.tables where table_schema = database() order by 1',
          )
    ).map((row) => row.name);
    const rows: Record<string, string[]> = {};
    for (const table of tables) {
      const all = await connection.execute<Record<string, unknown>[]>(`select * from ${table}`);
      rows[table] = all.map((row) => JSON.stringify(row)).sort();
    }
    return JSON.stringify(rows);
  }

  beforeAll(async () => {
    t = await startTestApp({ dialect });
    bystander = await registerUser(t.gql, { displayName: 'Bystander' });
    const admin = await registerUser(t.gql);
    await t.app.orm.em.fork().nativeUpdate(User, { id: admin.user.id }, { roles: 'USER,ADMIN' });
    const login = await loginUser(t.gql, admin.user.email, admin.password);
    adminToken = login.data?.login.accessToken as string;
    expect(adminToken).toBeTruthy();
  });
  afterAll(() => t?.close());

  for (const signedIn of [false, true]) {
    const caller = signedIn ? 'an admin' : 'an anonymous caller';

    it(`refuses U+0000 and lone surrogates in every text argument from ${caller}, naming the field, changing nothing`, async () => {
      const before = await snapshot();
      const token = signedIn ? adminToken : undefined;
      const tasks = slots().flatMap((slot) =>
        Object.entries(REFUSED).map(([label, text]) => async () => {
          const what = `${describeSlot(slot)} ← ${label} (variables)`;
          const { query, variables } = request(slot, text, false);
          const response = await t.gql(query, variables, { token });
          expectNoInternalError(response, what);
          expect(response.errors, what).toHaveLength(1);
          expect(response.errors?.[0]?.extensions, what).toEqual({ code: 'BAD_USER_INPUT', field: slot.name });
          expect(response.data ?? null, what).toBeNull();
        }),
      );
      await inBatches(tasks);
      expect(await snapshot()).toBe(before);
    });

    it(`refuses the same in document literals from ${caller}: U+0000 as BAD_USER_INPUT, a lone surrogate as a syntax error`, async () => {
      const before = await snapshot();
      const token = signedIn ? adminToken : undefined;
      const tasks = slots()
        .filter((slot) => slot.path.length === 0 && !(unwrap(slot.argument.type) instanceof GraphQLList))
        .flatMap((slot) =>
          Object.entries(REFUSED).map(([label, text]) => async () => {
            const what = `${describeSlot(slot)} ← ${label} (literal)`;
            const { query, variables } = request(slot, text, true);
            const response = await t.gql(query, variables, { token });
            expectNoInternalError(response, what);
            expect(response.errors, what).toHaveLength(1);
            expect(response.errors?.[0]?.extensions, what).toEqual(
              label === 'nul' ? { code: 'BAD_USER_INPUT', field: slot.name } : { code: 'GRAPHQL_PARSE_FAILED' },
            );
            expect(response.data ?? null, what).toBeNull();
          }),
        );
      await inBatches(tasks);
      expect(await snapshot()).toBe(before);
    });

    it(`answers quotes, backslashes, 10 kB and bidi text in every text argument from ${caller} without an internal error`, async () => {
      const token = signedIn ? adminToken : undefined;
      const em = () => t.app.orm.em.fork();
      const bystanderBefore = await em().findOneOrFail(User, { id: bystander.user.id }, { disableIdentityMap: true });
      const usersBefore = await em().count(User);
      const tasks = slots().flatMap((slot) =>
        Object.entries(ODD).flatMap(([label, text]) =>
          [false, true]
            .filter(
              (literal) => !literal || (slot.path.length === 0 && !(unwrap(slot.argument.type) instanceof GraphQLList)),
            )
            .map((literal) => async () => {
              const what = `${describeSlot(slot)} ← ${label} (${literal ? 'literal' : 'variables'})`;
              const { query, variables } = request(slot, text, literal);
              expectNoInternalError(await t.gql(query, variables, { token }), what);
            }),
        ),
      );
      await inBatches(tasks);
      // Nothing matched more than it should have: the other accounts are as they were, none went missing.
      const bystanderAfter = await em().findOneOrFail(User, { id: bystander.user.id }, { disableIdentityMap: true });
      expect(bystanderAfter).toEqual(bystanderBefore);
      expect(await em().count(User)).toBeGreaterThanOrEqual(usersBefore);
      const me = await t.gql('{ me { id displayName } }', {}, { token: bystander.accessToken });
      expect(me.data).toEqual({ me: { id: bystander.user.id, displayName: 'Bystander' } });
    });
  }

  it('answers revokeSession of an id with a NUL as BAD_USER_INPUT, and of an unknown one as NOT_FOUND', async () => {
    const user = await registerUser(t.gql);
    const revoke = 'mutation($id: ID!) { revokeSession(id: $id) }';
    for (const id of ['a\u0000b', `${user.session.id}\u0000`, '\ud800']) {
      const response = await t.gql(revoke, { id }, { token: user.accessToken });
      expect(response.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'id' });
    }
    const literal = await t.gql('mutation { revokeSession(id: "a\\u0000b") }', {}, { token: user.accessToken });
    expect(literal.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'id' });
    for (const id of ["'OR''='", randomUUID(), 'x'.repeat(256)]) {
      const response = await t.gql(revoke, { id }, { token: user.accessToken });
      expect(response.errors?.[0]?.extensions).toEqual({ code: 'NOT_FOUND' });
    }
    // An id of a shape we never issue (too long, not visible ASCII) is refused at the boundary.
    for (const id of ['x'.repeat(257), 'é', 'a b']) {
      const response = await t.gql(revoke, { id }, { token: user.accessToken });
      expect(response.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'id' });
    }
    const sessions = await t.gql('{ me { sessions { id } } }', {}, { token: user.accessToken });
    expect(sessions.data?.me.sessions).toEqual([{ id: user.session.id }]);
  });

  it('sends values to the ORM as bound parameters: text with quotes and a NUL finds nothing and breaks nothing', async () => {
    const em = t.app.orm.em.fork();
    for (const text of ["a'b", 'a\u0000b', "' OR 1=1 --", '?', '\\', 'x'.repeat(10_000)]) {
      expect(await em.findOne(User, { id: text })).toBeNull();
      expect(await em.count(User, { email: text })).toBe(0);
    }
    // The NUL is stored and read back whole, not cut short where a statement's text would end.
    const user = await registerUser(t.gql);
    const odd = "Zero\u0000 ' \\ ? end";
    await em.nativeUpdate(User, { id: user.user.id }, { displayName: odd });
    const row = await t.app.orm.em.fork().findOneOrFail(User, { id: user.user.id });
    expect(row.displayName).toBe(odd);
  });

  it('answers users(after:) with a cursor it did not issue with BAD_USER_INPUT on after', async () => {
    const users =
      'query($after: String) { users(first: 1, after: $after) { edges { cursor } pageInfo { endCursor } } }';
    const first = await t.gql(users, {}, { token: adminToken });
    const issued = first.data?.users.pageInfo.endCursor as string;
    expect(issued).toBeTruthy();
    const second = await t.gql(users, { after: issued }, { token: adminToken });
    expect(second.errors).toBeUndefined();

    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const id = randomUUID();
    const forged = [
      encode([1e20, id]),
      encode([-1, id]),
      encode([8.64e15 + 1, id]),
      encode([1.5, id]),
      encode([Number.MAX_SAFE_INTEGER, id]),
      encode(['1', id]),
      encode([Date.now(), "x' OR 1=1 --"]),
      encode([Date.now(), id, 'extra']),
      encode({ createdAt: Date.now(), id }),
      encode(null),
      `${issued}=`,
      `${issued}.`,
      'not a cursor',
      'x'.repeat(10_000),
      '',
    ];
    for (const after of forged) {
      const response = await t.gql(users, { after }, { token: adminToken });
      if (after === '') {
        expect(response.errors).toBeUndefined(); // no cursor: the first page
        continue;
      }
      expect(response.errors?.[0]?.extensions, after.slice(0, 40)).toEqual({ code: 'BAD_USER_INPUT', field: 'after' });
      expect(response.data ?? null).toBeNull();
    }
  });
});
