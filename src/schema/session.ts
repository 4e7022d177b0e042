// Session, and the mutations that end sessions.

import { AuthError } from '../errors.ts';
import type { SessionInfo } from '../sessions/sessions.ts';
import { logout, revokeOtherSessions, revokeSession } from '../sessions/user-sessions.ts';
import { builder } from './builder.ts';

const reasonOf = (error: unknown) => (error instanceof AuthError ? error.details?.reason : undefined);

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
      try {
        return await logout(context.services, context.call);
      } catch (error) {
        // Already ended by a request this instance had not heard of: the session's cookie is worth nothing either,
        // and a logout clears it (API.md, browser sessions) whichever request ended the session.
        const sid = context.auth?.sid;
        if (sid && reasonOf(error) === 'SESSION_REVOKED' && context.refreshCookie.carries(sid)) {
          context.refreshCookie.clear();
        }
        throw error;
      }
    },
  }),
  revokeSession: t.boolean({
    description: "Revokes one of the caller's sessions (NOT_FOUND for anyone else's).",
    authScopes: { scope: 'sessions:write' },
    args: { id: t.arg.id() },
    resolve: (_root, { id }, context) => revokeSession(context.services, context.call, { id: String(id) }),
  }),
  revokeOtherSessions: t.int({
    description: "Revokes all of the caller's sessions except the current one; returns how many.",
    authScopes: { scope: 'sessions:write' },
    resolve: (_root, _args, context) => revokeOtherSessions(context.services, context.call),
  }),
}));
