// User: the account as others may see it; email and sessions only for the account holder or scoped admins.
import { ROLES, type UserRow } from '../db/entities.ts';
import { unauthenticated } from '../errors.ts';
import { rolesOf } from '../sessions/sessions.ts';
import { listSessions } from '../sessions/user-sessions.ts';
import { splitScopes } from '../tokens/scopes.ts';
import { builder } from './builder.ts';
import { type Context, currentSessionOf, isSelf } from './context.ts';
import { usersOf } from './loaders.ts';
import { SessionType } from './session.ts';

export const RoleEnum = builder.enumType('Role', {
  description: 'USER is everyone; ADMIN adds the users:* and sessions:admin scopes.',
  values: ROLES,
});

/** The caller as the access token describes them: enough for `id` and `roles` without a database read. */
interface ClaimsUser {
  readonly id: string;
  readonly roles: string;
  readonly fromClaims: true;
}

/** What a User field resolves from: a loaded row, or (for `me`) the token's claims until a field needs more. */
export type UserSource = UserRow | ClaimsUser;

async function rowOf(user: UserSource, context: Context): Promise<UserRow> {
  if (!('fromClaims' in user)) return user;
  const row = await usersOf(context).load(user.id);
  if (!row) throw unauthenticated('SESSION_REVOKED');
  return row;
}

export const UserType = builder.objectRef<UserSource>('User').implement({
  description: 'An account.',
  fields: (t) => ({
    id: t.exposeID('id'),
    email: t.string({
      description: 'Visible to the account holder, or with scope users:read.',
      authScopes: (user, _args, context) => (isSelf(context, user.id) ? true : { scope: 'users:read' }),
      resolve: async (user, _args, context) => (await rowOf(user, context)).email,
    }),
    emailVerified: t.boolean({ resolve: async (user, _args, context) => (await rowOf(user, context)).emailVerified }),
    displayName: t.string({
      nullable: true,
      resolve: async (user, _args, context) => (await rowOf(user, context)).displayName ?? null,
    }),
    roles: t.field({ type: [RoleEnum], resolve: (user) => rolesOf(user) }),
    disabled: t.boolean({
      description: 'Whether an admin disabled the account (no sign-in, no refresh). The account holder, or users:read.',
      authScopes: (user, _args, context) => (isSelf(context, user.id) ? true : { scope: 'users:read' }),
      resolve: async (user, _args, context) => (await rowOf(user, context)).disabled,
    }),
    scopes: t.stringList({
      description: 'The API scopes granted to the user (sorted). The account holder, or users:read.',
      authScopes: (user, _args, context) => (isSelf(context, user.id) ? true : { scope: 'users:read' }),
      resolve: async (user, _args, context) => splitScopes((await rowOf(user, context)).scopes),
    }),
    createdAt: t.field({
      type: 'DateTime',
      resolve: async (user, _args, context) => (await rowOf(user, context)).createdAt,
    }),
    sessions: t.field({
      type: [SessionType],
      description: "Active sessions, newest first: the account holder's (sessions:read) or with sessions:admin.",
      authScopes: (user, _args, context) => {
        if (context.auth?.sub === user.id) return { scope: 'sessions:read' };
        return isSelf(context, user.id) ? true : { scope: 'sessions:admin' };
      },
      resolve: (user, _args, context) =>
        listSessions(context.services, context.call, {
          userId: user.id,
          currentSessionId: currentSessionOf(context, user.id),
        }),
    }),
  }),
});

builder.queryField('me', (t) =>
  t.field({
    type: UserType,
    nullable: true,
    description: 'The signed-in user; null when the request carries no token.',
    // `id` and `roles` come from the verified token; other fields load the row once per request.
    resolve: (_root, _args, context) =>
      context.auth ? { id: context.auth.sub, roles: context.auth.roles.join(','), fromClaims: true as const } : null,
  }),
);
