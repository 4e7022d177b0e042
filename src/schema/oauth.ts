// OAuth sign-in and account linking: the providers on offer, starting an attempt, signing in or linking with the
// code and state that come back, unlinking, and User.linkedAccounts.

import { linkOAuthProvider } from '../oauth/link.ts';
import { type LinkedAccountInfo, listLinkedAccounts } from '../oauth/linked-accounts.ts';
import { loginWithOAuth } from '../oauth/login.ts';
import { listOAuthProviders } from '../oauth/oauth.ts';
import type { ProviderInfo } from '../oauth/providers.ts';
import { type OAuthStart, startOAuth } from '../oauth/start.ts';
import { unlinkOAuthProvider } from '../oauth/unlink.ts';
import { AuthPayloadType, clientIdField } from './auth.ts';
import { builder } from './builder.ts';
import { isSelf, signedIn } from './context.ts';
import { signsIn } from './marks.ts';
import { delivered, deliveryOf, tokenDeliveryField } from './token-delivery.ts';
import { UserType } from './user.ts';

const OAuthProviderType = builder.objectRef<ProviderInfo>('OAuthProvider').implement({
  description: 'A configured sign-in provider.',
  fields: (t) => ({
    id: t.exposeString('id', {
      description: 'What startOAuth and the other OAuth operations take: `github`, `google`…',
    }),
    name: t.exposeString('name', { description: 'For display: "GitHub", "Google"…' }),
  }),
});

const OAuthStartType = builder.objectRef<OAuthStart>('OAuthStart').implement({
  description: 'Where to send the user, and the state that comes back with the code on the redirect URI.',
  fields: (t) => ({
    authorizationUrl: t.exposeString('authorizationUrl'),
    state: t.exposeString('state', { description: 'Single use, valid for 10 minutes.' }),
  }),
});

const LinkedAccountType = builder.objectRef<LinkedAccountInfo>('LinkedAccount').implement({
  description: 'A provider account that signs in as this user.',
  fields: (t) => ({
    provider: t.exposeString('provider'),
    providerUserId: t.exposeString('providerUserId'),
    email: t.exposeString('email', { nullable: true, description: 'As the provider reported it when linked.' }),
    linkedAt: t.expose('linkedAt', { type: 'DateTime' }),
  }),
});

const OAuthCodeInput = builder.inputType('OAuthCodeInput', {
  description: 'What the provider sent back to the redirect URI.',
  fields: (t) => ({
    provider: t.string(),
    code: t.string(),
    state: t.string(),
    tokenDelivery: t.field({ ...tokenDeliveryField, description: `${tokenDeliveryField.description} Sign-in only.` }),
    clientId: t.field({
      ...clientIdField,
      description:
        'Optional: the session is for the client given to startOAuth (bound into the state). A different one is ' +
        'BAD_USER_INPUT (field clientId), as is an unknown or disabled one.',
    }),
  }),
});

builder.objectField(UserType, 'linkedAccounts', (t) =>
  t.field({
    type: [LinkedAccountType],
    description: 'Linked provider accounts, oldest first: the account holder, or with scope users:read.',
    authScopes: (user, _args, context) => (isSelf(context, user.id) ? true : { scope: 'users:read' }),
    resolve: (user, _args, context) => listLinkedAccounts(context.services, context.call, { userId: user.id }),
  }),
);

builder.queryField('oauthProviders', (t) =>
  t.field({
    type: [OAuthProviderType],
    description: 'The configured OAuth/OpenID Connect providers.',
    resolve: (_root, _args, context) => listOAuthProviders(context.services, context.call),
  }),
);

builder.mutationFields((t) => ({
  startOAuth: t.field({
    type: OAuthStartType,
    description:
      'Starts a sign-in with a provider (PKCE, state, nonce) for the client `clientId` (default `default`). With a ' +
      'bearer token it starts a link to the caller instead, for linkOAuthProvider. redirectUri must be one of ' +
      "OAUTH_REDIRECT_URIS or of the client's redirectUris (exact match).",
    args: { provider: t.arg.string(), redirectUri: t.arg.string(), clientId: t.arg(clientIdField) },
    resolve: (_root, args, context) => startOAuth(context.services, context.call, args),
  }),
  loginWithOAuth: t.field({
    type: AuthPayloadType,
    description:
      'Signs in with the code and state from the redirect URI: a linked account signs in, an unknown one ' +
      'becomes a new account. ACCOUNT_EXISTS when its email belongs to an account: sign in there and link.',
    extensions: signsIn('oauth'),
    args: { input: t.arg({ type: OAuthCodeInput }) },
    resolve: async (_root, { input }, context) => {
      const tokenDelivery = deliveryOf(context, input.tokenDelivery);
      return signedIn(
        context,
        delivered(context, await loginWithOAuth(context.services, context.call, { ...input, tokenDelivery })),
      );
    },
  }),
  linkOAuthProvider: t.field({
    type: UserType,
    description:
      'Links the provider account to the caller (started by startOAuth with the same token). ' +
      'OAUTH_ACCOUNT_IN_USE when it is linked to another account.',
    authScopes: { authenticated: true },
    args: { input: t.arg({ type: OAuthCodeInput }) },
    resolve: (_root, { input }, context) => linkOAuthProvider(context.services, context.call, input),
  }),
  unlinkOAuthProvider: t.field({
    type: UserType,
    description:
      "Unlinks the caller's account of this provider. NOT_FOUND when none is linked; BAD_USER_INPUT when it is " +
      'the last way to sign in (no password, no other linked account).',
    authScopes: { authenticated: true },
    args: { provider: t.arg.string() },
    resolve: (_root, args, context) => unlinkOAuthProvider(context.services, context.call, args),
  }),
}));
