// Session, and the mutations that end sessions.

import type { SessionInfo } from '../sessions/sessions.ts';
import { logout, revokeOtherSessions, revokeSession } from '../sessions/user-sessions.ts';
import { builder } from './builder.ts';

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
    // A session already ended by a request this instance had not heard of answers SESSION_REVOKED, and its cookie
    // is cleared all the same (refresh-cookie.ts), as a logout's is (API.md, browser sessions).
    resolve: (_root, _args, context) => logout(context.services, context.call),
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
