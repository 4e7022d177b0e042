// Subscription.sessionRevoked: every revocation of any of the caller's sessions, as it happens.
import { Repeater } from 'graphql-yoga';
import { REVOCATION_REASONS, type RevocationReason } from '../db/entities.ts';
import { unauthenticated } from '../errors.ts';
import { builder } from './builder.ts';

interface SessionRevocation {
  readonly sessionId: string;
  readonly reason: RevocationReason;
  readonly revokedAt: Date;
}

export const RevocationReasonEnum = builder.enumType('RevocationReason', {
  description: 'Why a session ended.',
  values: REVOCATION_REASONS,
});

const SessionRevocationType = builder.objectRef<SessionRevocation>('SessionRevocation').implement({
  description: 'A session of the subscriber that has been revoked: its tokens no longer work.',
  fields: (t) => ({
    sessionId: t.exposeID('sessionId'),
    reason: t.field({ type: RevocationReasonEnum, resolve: (event) => event.reason }),
    revokedAt: t.expose('revokedAt', { type: 'DateTime' }),
  }),
});

builder.subscriptionField('sessionRevoked', (t) =>
  t.field({
    type: SessionRevocationType,
    description:
      "Every revocation of any of the caller's sessions. When the caller's own session is revoked, the event " +
      'is delivered, the subscription completes and a WebSocket is closed with 4403. It also completes when ' +
      'the access token expires.',
    authScopes: { authenticated: true },
    subscribe: (_root, _args, context) => {
      const auth = context.auth;
      if (!auth) throw unauthenticated('AUTHENTICATION_REQUIRED');
      const { bus, clock } = context.services;
      return new Repeater<SessionRevocation>(async (push, stop) => {
        const expiry = setTimeout(() => stop(), Math.max(0, auth.exp * 1000 - clock.now()));
        const unsubscribe = bus.subscribe((event) => {
          if (event.userId !== auth.sub) return;
          const revokedAt = new Date(event.revokedAt);
          for (const sessionId of event.sessionIds) void push({ sessionId, reason: event.reason, revokedAt });
          if (event.sessionIds.includes(auth.sid)) stop();
        });
        await stop;
        clearTimeout(expiry);
        unsubscribe();
      });
    },
    resolve: (event) => event,
  }),
);
