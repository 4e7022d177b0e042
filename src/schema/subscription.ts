// Subscription.sessionRevoked: every revocation of any of the caller's sessions, as it happens.
import { Repeater } from 'graphql-yoga';
import { REVOCATION_REASONS } from '../db/entities.ts';
import { followSessionRevocations, type SessionRevocation } from '../sessions/revocation-events.ts';
import { builder } from './builder.ts';

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
    subscribe: (_root, _args, context) =>
      new Repeater<SessionRevocation>(async (push, stop) => {
        const unfollow = followSessionRevocations(context.services, context.call, {
          event: (revocation) => void push(revocation),
          end: () => stop(),
        });
        await stop;
        unfollow();
      }),
    resolve: (event) => event,
  }),
);
