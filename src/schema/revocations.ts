// Query.revocations and Subscription.revocations (scope sessions:feed): the revocation feed for services that
// verify our tokens themselves (API.md "Revocations for every service").
import type { FeedConsumer, FeedRevocation } from '../sessions/revocation-feed.ts';
import { builder } from './builder.ts';
import type { Context } from './context.ts';
import { scopeError } from './errors.ts';
import { RevocationReasonEnum } from './subscription.ts';

const FEED_SCOPE = 'sessions:feed';

const RevocationType = builder.objectRef<FeedRevocation>('Revocation').implement({
  description:
    'A revocation in force: while it lasts, every token it covers must be refused. With `sessionId`: every token ' +
    'whose `sid` is that session (its `clientId` and `userId` say whose it was, when known). With `sessionId` ' +
    'null: every token of `clientId` whose `iat` (seconds, times 1000) is before `revokedAt`, user tokens ' +
    'included; a later revocation of the same client replaces an earlier one (keep the latest `revokedAt`).',
  fields: (t) => ({
    sessionId: t.exposeID('sessionId', { nullable: true, description: 'Every token with this `sid` is revoked.' }),
    clientId: t.exposeID('clientId', {
      nullable: true,
      description:
        "The client concerned. With `sessionId` null, the revocation is the client's: every token of it issued " +
        'before `revokedAt` is revoked (its secret was rotated, or it was disabled).',
    }),
    userId: t.exposeID('userId', {
      nullable: true,
      description: "The session's user; null for a client's revocation and for a deleted account's session.",
    }),
    reason: t.field({ type: RevocationReasonEnum, resolve: (revocation) => revocation.reason }),
    revokedAt: t.expose('revokedAt', {
      type: 'DateTime',
      description:
        "When the session was revoked. For a client's revocation, the first whole second after it was made (a " +
        'token issued later carries at least that second as its `iat`). While a client stays disabled every ' +
        'token of it is refused: its revocation is then announced again every few seconds with a `revokedAt` ' +
        'ahead of the present, past any `iat` a token could carry until the next announcement.',
    }),
    tokensExpireBy: t.expose('tokensExpireBy', {
      type: 'DateTime',
      description:
        '`revokedAt` plus the access-token lifetime and the clock tolerance: no token the revocation covers ' +
        'can still verify after it, so a consumer forgets the revocation then.',
    }),
  }),
});

/**
 * The consumer a feed subscription is for: the claims of its token (a service token, as only they hold the scope).
 * Checked here, before anything is registered: scope-auth checks a subscription field's authScopes on each event,
 * not when subscribing, and a refused subscriber must get its error at once, not a silent stream.
 */
function consumerOf(context: Context): FeedConsumer {
  const claims = context.service ?? context.auth;
  if (!claims?.scopes.has(FEED_SCOPE)) throw scopeError(claims !== null);
  return { clientId: claims.client_id, iat: claims.iat, exp: claims.exp, service: claims.kind === 'service' };
}

builder.queryField('revocations', (t) =>
  t.field({
    type: [RevocationType],
    description:
      'Every revocation still in force (scope sessions:feed): revoked sessions whose tokens may still verify, ' +
      "deleted accounts' sessions, and client-wide revocations (secrets rotated, disabled clients). Together with " +
      'Subscription.revocations nothing is lost: subscribe first, then read this list; keep each entry until its ' +
      '`tokensExpireBy`. After a reconnection, subscribe again and read the list again.',
    authScopes: { scope: FEED_SCOPE },
    resolve: (_root, _args, context) => context.services.revocationFeed.list(),
  }),
);

builder.subscriptionField('revocations', (t) =>
  t.field({
    type: RevocationType,
    description:
      'Each new revocation, from any instance, as it happens (scope sessions:feed). The subscription is ' +
      'registered before its first event is sent; it starts by repeating the revocations this server heard in ' +
      'the last 10 seconds (some may already be in the list), so that a consumer that subscribes and then reads ' +
      'Query.revocations has every revocation even if its query ran before the subscription was registered. ' +
      "It completes (and a WebSocket closes with 4403) when the subscriber's token expires or is refused because " +
      'its client was disabled or its secret rotated: get a new token and subscribe again.',
    authScopes: { scope: FEED_SCOPE },
    subscribe: (_root, _args, context) => context.services.revocationFeed.open(consumerOf(context)),
    resolve: (revocation) => revocation,
  }),
);
