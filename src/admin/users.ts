// The admin surface over accounts: look up, list and search, change roles, disable or enable, end every session
// of a user.
import { LockMode } from '@mikro-orm/core';
import { sql } from 'kysely';
import { audit } from '../audit/audit.ts';
import { type Call, callerOf } from '../call.ts';
import type { Clock } from '../clock.ts';
import { ROLES, type Role, User, type UserRow } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { kysely, stampOf, toUser } from '../db/tables.ts';
import { transactional } from '../db/transaction.ts';
import { AuthError, badInput } from '../errors.ts';
import { holdCallerSession } from '../sessions/caller-session.ts';
import { rolesOf, type Sessions } from '../sessions/sessions.ts';
import { isApiScopeName, joinScopes, splitScopes } from '../tokens/scopes.ts';

export interface UserPage {
  readonly edges: readonly { cursor: string; node: UserRow }[];
  readonly pageInfo: { hasNextPage: boolean; endCursor: string | null };
  readonly totalCount: number;
}

export const MAX_PAGE_SIZE = 100;
/** users.scopes is a varchar(2048): the space-separated scopes of one user fit in it. */
const MAX_STORED_SCOPES_LENGTH = 2048;

// Users are listed oldest first; the cursor is the last row's (createdAt, id), which never changes.
const encodeCursor = (user: Pick<UserRow, 'createdAt' | 'id'>) =>
  Buffer.from(JSON.stringify([user.createdAt.getTime(), user.id])).toString('base64url');

const USER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// The range of a JavaScript Date; a created_at outside it would make an Invalid Date reach the query.
const MAX_TIME = 8.64e15;

/** Accepts only what encodeCursor writes: a cursor this API did not issue is BAD_USER_INPUT, never a query. */
function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  if (cursor.length <= 200 && /^[\w-]+$/.test(cursor)) {
    try {
      const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
      if (Array.isArray(value) && value.length === 2) {
        const [time, id] = value as unknown[];
        if (Number.isSafeInteger(time) && (time as number) >= 0 && (time as number) <= MAX_TIME) {
          const decoded = { createdAt: new Date(time as number), id: String(id) };
          if (typeof id === 'string' && USER_ID.test(id) && encodeCursor(decoded) === cursor) return decoded;
        }
      }
    } catch {}
  }
  throw badInput('after', 'The cursor is not one this API returned');
}

/**
 * Lists through MikroORM's Kysely so that the search text is a bound parameter: the ORM's QueryBuilder writes the
 * values of a raw() condition into the statement's text. `instr` (SQLite and MySQL alike) takes the text literally,
 * where LIKE would read `%` and `_` in a search as wildcards, and SQLite has no default LIKE escape character.
 */
export async function listUsers(
  _deps: unknown,
  call: Call,
  args: { first: number; after?: string | null; query?: string | null },
) {
  const { em } = call;
  if (!Number.isInteger(args.first) || args.first < 0 || args.first > MAX_PAGE_SIZE) {
    throw badInput('first', `first must be an integer from 0 to ${MAX_PAGE_SIZE}`);
  }
  const after = args.after ? decodeCursor(args.after) : undefined;
  const search = args.query?.trim().toLowerCase();
  const stamp = stampOf(em);
  const db = kysely(em);
  const matching = search
    ? db
        .selectFrom('users')
        .where((eb) =>
          eb.or([
            eb(sql<number>`instr(lower(email), ${search})`, '>', 0),
            eb(sql<number>`instr(lower(display_name), ${search})`, '>', 0),
          ]),
        )
    : db.selectFrom('users');
  const page = after
    ? matching.where((eb) =>
        eb.or([
          eb('created_at', '>', stamp(after.createdAt)),
          eb.and([eb('created_at', '=', stamp(after.createdAt)), eb('id', '>', after.id)]),
        ]),
      )
    : matching;
  const [records, counted] = await Promise.all([
    page
      .selectAll()
      .orderBy('created_at', 'asc')
      .orderBy('id', 'asc')
      .limit(args.first + 1)
      .execute(),
    matching.select((eb) => eb.fn.countAll<number | string>().as('count')).executeTakeFirstOrThrow(),
  ]);
  const rows = records.map(toUser);
  const nodes = rows.slice(0, args.first);
  const last = nodes.at(-1);
  return {
    edges: nodes.map((node) => ({ cursor: encodeCursor(node), node })),
    pageInfo: { hasNextPage: rows.length > args.first, endCursor: last ? encodeCursor(last) : null },
    totalCount: Number(counted.count),
  } satisfies UserPage;
}

export interface AdminDeps {
  readonly sessions: Sessions;
  readonly clock: Clock;
}

const isAdmin = (user: Pick<UserRow, 'roles'>) => rolesOf(user).includes('ADMIN');

/**
 * Reads `userId` and every enabled admin as committed, their rows locked in id order; NOT_FOUND when the user
 * does not exist. Every change that can take an enabled admin away (a role removed, an account disabled) runs
 * after this in its transaction, so two of them wait for each other in one order (no deadlock) and the second
 * reads what the first wrote: two admins disabling each other at once cannot leave none. (SQLite has one writer:
 * the second's write finds the database changed since its read and its transaction runs again.)
 */
async function lockAdminsAnd(tx: Em, userId: string): Promise<{ user: UserRow; otherEnabledAdmins: number }> {
  // Unlocked, only to know which rows to lock: the locking read below is the one that counts.
  const admins = await tx.find(
    User,
    { roles: { $like: '%ADMIN%' }, disabled: false },
    { fields: ['id'], disableIdentityMap: true },
  );
  const ids = [...new Set([userId, ...admins.map((row) => row.id)])];
  const rows = await tx.find(
    User,
    { id: { $in: ids } },
    { orderBy: { id: 'asc' }, lockMode: LockMode.PESSIMISTIC_WRITE, disableIdentityMap: true },
  );
  const user = rows.find((row) => row.id === userId);
  if (!user) throw new AuthError('NOT_FOUND', 'No such user');
  const otherEnabledAdmins = rows.filter((row) => row.id !== userId && isAdmin(row) && !row.disabled).length;
  return { user, otherEnabledAdmins };
}

/**
 * Replaces a user's roles (USER is always kept). Refuses to leave the service without an enabled admin. Removing
 * a role revokes the user's sessions, so that tokens carrying the old role stop working at once; an added role
 * arrives with the next refresh or sign-in.
 */
export async function setUserRoles(
  deps: AdminDeps,
  call: Call,
  input: { userId: string; roles: readonly Role[] },
): Promise<UserRow> {
  const { em, meta } = call;
  const actorId = callerOf(call).sub;
  const { userId, roles: requested } = input;
  const roles = ROLES.filter((role) => role === 'USER' || requested.includes(role));
  const { user, revocation } = await transactional(em, async (tx) => {
    const { user: current, otherEnabledAdmins } = await lockAdminsAnd(tx, userId);
    await holdCallerSession(tx, call.caller);
    const before = rolesOf(current);
    if (isAdmin(current) && !current.disabled && !roles.includes('ADMIN') && otherEnabledAdmins === 0) {
      throw badInput('roles', 'This is the last enabled admin: make someone else an admin first');
    }
    const user = { ...current, roles: roles.join(','), updatedAt: new Date(deps.clock.now()) } as UserRow;
    // A native UPDATE by id: the rows read above are not managed (and cached copies of the user are dropped).
    await tx.nativeUpdate(User, { id: userId }, { roles: user.roles, updatedAt: user.updatedAt });
    audit(
      tx,
      meta,
      { type: 'ROLES_CHANGED', userId, detail: { by: actorId, from: before.join(','), to: user.roles } },
      user.updatedAt,
    );
    const removed = before.some((role) => !roles.includes(role));
    const revocation = removed
      ? await deps.sessions.revokeIn(tx, { userId, sessionIds: 'all', reason: 'REVOKED_BY_ADMIN', meta })
      : undefined;
    return { user, revocation };
  });
  if (revocation) await deps.sessions.published(revocation);
  return user;
}

/**
 * Replaces a user's API scopes (scope users:write): names as API.md has them (`isApiScopeName`), stored sorted. A
 * scope removed revokes every session of the user (REVOKED_BY_ADMIN), as tokens carrying it must stop working at
 * once; a scope added arrives with the next refresh or sign-in of a client that declares it.
 */
export async function setUserScopes(
  deps: AdminDeps,
  call: Call,
  input: { userId: string; scopes: readonly string[] },
): Promise<UserRow> {
  const { em, meta } = call;
  const actorId = callerOf(call).sub;
  const { userId } = input;
  if (!input.scopes.every(isApiScopeName)) {
    throw badInput(
      'scopes',
      'An API scope is 1-64 of a-z 0-9 _ . : -, starting with a letter, and not a built-in scope',
    );
  }
  const stored = joinScopes(input.scopes);
  if (stored.length > MAX_STORED_SCOPES_LENGTH) {
    throw badInput('scopes', `Too many scopes: at most ${MAX_STORED_SCOPES_LENGTH} characters in all`);
  }
  const { user, revocation } = await transactional(em, async (tx) => {
    // Locked, so that two changes of one user's scopes each see what the other wrote (and revoke when it removed).
    const [current] = await tx.find(
      User,
      { id: userId },
      { lockMode: LockMode.PESSIMISTIC_WRITE, disableIdentityMap: true },
    );
    if (!current) throw new AuthError('NOT_FOUND', 'No such user');
    await holdCallerSession(tx, call.caller);
    if (current.scopes === stored) return { user: current, revocation: undefined };
    const user = { ...current, scopes: stored, updatedAt: new Date(deps.clock.now()) } as UserRow;
    // A native UPDATE by id, which also drops every instance's cached copy of the user (user-writes.ts).
    await tx.nativeUpdate(User, { id: userId }, { scopes: stored, updatedAt: user.updatedAt });
    audit(
      tx,
      meta,
      { type: 'USER_SCOPES_CHANGED', userId, detail: { by: actorId, from: current.scopes, to: stored } },
      user.updatedAt,
    );
    const after = new Set(splitScopes(stored));
    const removed = splitScopes(current.scopes).some((scope) => !after.has(scope));
    const revocation = removed
      ? await deps.sessions.revokeIn(tx, { userId, sessionIds: 'all', reason: 'REVOKED_BY_ADMIN', meta })
      : undefined;
    return { user, revocation };
  });
  if (revocation) await deps.sessions.published(revocation);
  return user;
}

/**
 * Disables or enables an account (scope users:write). Disabling revokes every session of the user
 * (REVOKED_BY_ADMIN); sign-ins then answer ACCOUNT_DISABLED and refreshes UNAUTHENTICATED (ACCOUNT_DISABLED).
 * The last enabled admin cannot be disabled (BAD_USER_INPUT, field userId). Setting what is already set
 * changes nothing.
 */
export function setUserDisabled(
  deps: AdminDeps,
  call: Call,
  input: { userId: string; disabled: boolean },
): Promise<UserRow> {
  return changeUserDisabled(deps, call, input, callerOf(call).sub);
}

/** setUserDisabled for a named actor (`by` in the audit trail): an admin's id, or `cli` for the admin CLI. */
export async function changeUserDisabled(
  deps: AdminDeps,
  call: Pick<Call, 'em' | 'meta'> & { readonly caller?: Call['caller'] },
  input: { userId: string; disabled: boolean },
  by: string,
): Promise<UserRow> {
  const { em, meta } = call;
  const { userId, disabled } = input;
  const { user, revocation } = await transactional(em, async (tx) => {
    const { user: current, otherEnabledAdmins } = await lockAdminsAnd(tx, userId);
    await holdCallerSession(tx, call.caller);
    if (current.disabled === disabled) return { user: current, revocation: undefined };
    if (disabled && isAdmin(current) && otherEnabledAdmins === 0) {
      throw badInput('userId', 'This is the last enabled admin: make someone else an admin first');
    }
    const user = { ...current, disabled, updatedAt: new Date(deps.clock.now()) } as UserRow;
    await tx.nativeUpdate(User, { id: userId }, { disabled, updatedAt: user.updatedAt });
    audit(tx, meta, { type: disabled ? 'USER_DISABLED' : 'USER_ENABLED', userId, detail: { by } }, user.updatedAt);
    const revocation = disabled
      ? await deps.sessions.revokeIn(tx, { userId, sessionIds: 'all', reason: 'REVOKED_BY_ADMIN', meta })
      : undefined;
    return { user, revocation };
  });
  if (revocation) await deps.sessions.published(revocation);
  return user;
}

/**
 * Ends every session of a user (reason REVOKED_BY_ADMIN); returns how many were active. UNAUTHENTICATED
 * SESSION_REVOKED, ending none, when the admin's own session was revoked while the request ran.
 */
export async function revokeUserSessions(deps: AdminDeps, call: Call, { userId }: { userId: string }): Promise<number> {
  const { em, meta } = call;
  const actorId = callerOf(call).sub;
  if ((await em.count(User, { id: userId })) === 0) throw new AuthError('NOT_FOUND', 'No such user');
  const revocation = await transactional(em, async (tx) => {
    // The admin's session before the user's (the order of caller-session.ts): a revocation of it answered first
    // is seen here, one still running waits until these sessions are ended.
    await holdCallerSession(tx, call.caller);
    const done = await deps.sessions.revokeIn(tx, { userId, sessionIds: 'all', reason: 'REVOKED_BY_ADMIN', meta });
    audit(tx, meta, { type: 'USER_SESSIONS_REVOKED', userId, detail: { by: actorId } }, new Date(done.revokedAt));
    return done;
  });
  return deps.sessions.published(revocation);
}

/** A user by id, for admins; null when there is none. */
export function findUser(_deps: unknown, call: Call, { id }: { id: string }): Promise<UserRow | null> {
  return call.em.findOne(User, { id });
}
