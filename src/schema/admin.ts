// The admin surface: user(id), users(...) with Relay-style pagination, setUserRoles, setUserDisabled,
// setUserScopes, revokeUserSessions.
import {
  findUser,
  listUsers,
  MAX_PAGE_SIZE,
  revokeUserSessions,
  setUserDisabled,
  setUserRoles,
  setUserScopes,
} from '../admin/users.ts';
import type { UserRow } from '../db/entities.ts';
import { builder } from './builder.ts';
import { RoleEnum, UserType } from './user.ts';

const UserEdgeType = builder.objectRef<{ cursor: string; node: UserRow }>('UserEdge').implement({
  fields: (t) => ({
    cursor: t.exposeString('cursor'),
    node: t.field({ type: UserType, resolve: (edge) => edge.node }),
  }),
});

export const PageInfoType = builder
  .objectRef<{ hasNextPage: boolean; endCursor: string | null }>('PageInfo')
  .implement({
    fields: (t) => ({
      hasNextPage: t.exposeBoolean('hasNextPage'),
      endCursor: t.exposeString('endCursor', { nullable: true }),
    }),
  });

const UserConnectionType = builder.objectRef<Awaited<ReturnType<typeof listUsers>>>('UserConnection').implement({
  description: 'A page of users, oldest first.',
  fields: (t) => ({
    edges: t.field({ type: [UserEdgeType], resolve: (page) => page.edges }),
    pageInfo: t.field({ type: PageInfoType, resolve: (page) => page.pageInfo }),
    totalCount: t.exposeInt('totalCount', { description: 'All users matching `query`, on every page.' }),
  }),
});

builder.queryFields((t) => ({
  user: t.field({
    type: UserType,
    nullable: true,
    description: 'A user by id (scope users:read); null when there is none.',
    authScopes: { scope: 'users:read' },
    args: { id: t.arg.id() },
    resolve: (_root, { id }, context) => findUser(context.services, context.call, { id: String(id) }),
  }),
  users: t.field({
    type: UserConnectionType,
    description: `Users, oldest first, optionally searched by email or display name (scope users:read). At most ${MAX_PAGE_SIZE} a page.`,
    authScopes: { scope: 'users:read' },
    args: {
      first: t.arg.int({ required: false, defaultValue: 20 }),
      after: t.arg.string({ required: false }),
      query: t.arg.string({ required: false }),
    },
    resolve: (_root, args, context) =>
      listUsers(context.services, context.call, { first: args.first ?? 20, after: args.after, query: args.query }),
  }),
}));

builder.mutationFields((t) => ({
  setUserRoles: t.field({
    type: UserType,
    description:
      "Replaces a user's roles (scope users:write); USER is always kept. Removing a role ends the user's sessions. " +
      'The last admin cannot lose ADMIN.',
    authScopes: { scope: 'users:write' },
    args: { userId: t.arg.id(), roles: t.arg({ type: [RoleEnum] }) },
    resolve: (_root, { userId, roles }, context) =>
      setUserRoles(context.services, context.call, { userId: String(userId), roles }),
  }),
  setUserDisabled: t.field({
    type: UserType,
    description:
      "Disables or enables an account (scope users:write). Disabling ends the user's sessions (REVOKED_BY_ADMIN); " +
      'a disabled account cannot sign in or refresh. The last enabled admin cannot be disabled.',
    authScopes: { scope: 'users:write' },
    args: { userId: t.arg.id(), disabled: t.arg.boolean() },
    resolve: (_root, { userId, disabled }, context) =>
      setUserDisabled(context.services, context.call, { userId: String(userId), disabled }),
  }),
  setUserScopes: t.field({
    type: UserType,
    description:
      "Replaces a user's API scopes (scope users:write). Removing one ends the user's sessions (REVOKED_BY_ADMIN); " +
      "one added reaches the user's tokens at the next refresh, for clients that declare it.",
    authScopes: { scope: 'users:write' },
    args: { userId: t.arg.id(), scopes: t.arg.stringList() },
    resolve: (_root, { userId, scopes }, context) =>
      setUserScopes(context.services, context.call, { userId: String(userId), scopes }),
  }),
  revokeUserSessions: t.int({
    description: 'Ends every session of a user (scope sessions:admin); returns how many were active.',
    authScopes: { scope: 'sessions:admin' },
    args: { userId: t.arg.id() },
    resolve: (_root, { userId }, context) =>
      revokeUserSessions(context.services, context.call, { userId: String(userId) }),
  }),
}));
