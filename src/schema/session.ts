// Session, and the mutations that end sessions.
import type { SessionInfo } from '../sessions/sessions.ts';
import { builder } from './builder.ts';
import { claimsOf } from './context.ts';

export const SessionType = builder.objectRef<SessionInfo>('Session').implement({
  description: 'One signed-in device or client: a login, registration or OAuth sign-in and its refresh-token family.',
  fields: (t) => ({
    id: t.exposeID('id'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    lastUsedAt: t.expose('lastUsedAt', { type: 'DateTime' }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', description: 'When the current refresh token expires.' }),
    userAgent: t.exposeString('userAgent', { nullable: true }),
    ipAddress: t.exposeString('ipAddress', { nullable: true }),
    current: t.exposeBoolean('current', {
      description: 'Whether this is the session of the token making the request.',
    }),
  }),
});

builder.mutationFields((t) => ({
  logout: t.boolean({
    description: 'Revokes the current session.',
    authScopes: { authenticated: true },
    resolve: async (_root, _args, context) => {
      const { sub, sid } = claimsOf(context);
      await context.services.sessions.revoke(context.em, sub, [sid], 'LOGOUT', context.meta);
      return true;
    },
  }),
  revokeSession: t.boolean({
    description: "Revokes one of the caller's sessions (NOT_FOUND for anyone else's).",
    authScopes: { scope: 'sessions:write' },
    args: { id: t.arg.id() },
    resolve: async (_root, { id }, context) => {
      await context.services.sessions.revokeOwn(
        context.em,
        claimsOf(context).sub,
        String(id),
        'REVOKED_BY_USER',
        context.meta,
      );
      return true;
    },
  }),
  revokeOtherSessions: t.int({
    description: "Revokes all of the caller's sessions except the current one; returns how many.",
    authScopes: { scope: 'sessions:write' },
    resolve: (_root, _args, context) => {
      const { sub, sid } = claimsOf(context);
      return context.services.sessions.revoke(context.em, sub, 'all', 'REVOKED_BY_USER', context.meta, { except: sid });
    },
  }),
}));
