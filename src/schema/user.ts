// User: the account as others may see it; email and sessions only for the account holder or scoped admins.
import { ROLES, User, type UserRow } from '../db/entities.ts';
import { unauthenticated } from '../errors.ts';
import { rolesOf } from '../sessions/sessions.ts';
import { builder } from './builder.ts';
import { currentSessionOf, isSelf } from './context.ts';
import { SessionType } from './session.ts';

export const RoleEnum = builder.enumType('Role', {
  description: 'USER is everyone; ADMIN adds the users:* and sessions:admin scopes.',
  values: ROLES,
});

export const UserType = builder.objectRef<UserRow>('User').implement({
  description: 'An account.',
  fields: (t) => ({
    id: t.exposeID('id'),
    email: t.exposeString('email', {
      description: 'Visible to the account holder, or with scope users:read.',
      authScopes: (user, _args, context) => (isSelf(context, user.id) ? true : { scope: 'users:read' }),
    }),
    emailVerified: t.exposeBoolean('emailVerified'),
    displayName: t.string({ nullable: true, resolve: (user) => user.displayName ?? null }),
    roles: t.field({ type: [RoleEnum], resolve: (user) => rolesOf(user) }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    sessions: t.field({
      type: [SessionType],
      description: "Active sessions, newest first: the account holder's (sessions:read) or with sessions:admin.",
      authScopes: (user, _args, context) => {
        if (context.auth?.sub === user.id) return { scope: 'sessions:read' };
        return isSelf(context, user.id) ? true : { scope: 'sessions:admin' };
      },
      resolve: (user, _args, context) =>
        context.services.sessions.listActive(context.em, user.id, currentSessionOf(context, user.id)),
    }),
  }),
});

builder.queryField('me', (t) =>
  t.field({
    type: UserType,
    nullable: true,
    description: 'The signed-in user; null when the request carries no token.',
    resolve: async (_root, _args, context) => {
      if (!context.auth) return null;
      const user = await context.em.findOne(User, { id: context.auth.sub });
      if (!user) throw unauthenticated('The account no longer exists', 'ACCOUNT_NOT_FOUND');
      return user;
    },
  }),
);
