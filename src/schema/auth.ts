// Password sign-in: AuthPayload and register, login, refresh, changePassword.
import { changePassword } from '../auth/change-password.ts';
import { login } from '../auth/login.ts';
import { register } from '../auth/register.ts';
import type { IssuedTokens } from '../sessions/sessions.ts';
import { builder } from './builder.ts';
import { signedIn } from './context.ts';
import { checksCredential } from './marks.ts';
import { SessionType } from './session.ts';
import { delivered, deliveryOf, refreshed, tokenDeliveryField } from './token-delivery.ts';
import { UserType } from './user.ts';

export const AuthPayloadType = builder.objectRef<IssuedTokens>('AuthPayload').implement({
  description: 'Tokens for a session: a short-lived access token (JWT) and a single-use refresh token.',
  fields: (t) => ({
    accessToken: t.exposeString('accessToken'),
    accessTokenExpiresAt: t.expose('accessTokenExpiresAt', { type: 'DateTime' }),
    refreshToken: t.string({
      nullable: true,
      description: 'Opaque; spent by the next refresh. Null for a cookie-bound session (tokenDelivery COOKIE).',
      // Here too, not only in the resolvers: whatever returns a cookie-bound payload, its token stays out.
      resolve: (payload) => (payload.cookieBound ? null : payload.refreshToken),
    }),
    refreshTokenExpiresAt: t.expose('refreshTokenExpiresAt', { type: 'DateTime' }),
    tokenType: t.exposeString('tokenType', { description: 'Always "Bearer".' }),
    user: t.field({ type: UserType, resolve: (payload) => payload.user }),
    session: t.field({ type: SessionType, resolve: (payload) => payload.session }),
  }),
});

/** The input field (and startOAuth argument) every sign-in has: the client the new session is for. */
export const clientIdField = {
  type: 'ID',
  required: false,
  description:
    'The client (app) signing the user in; `default` when left out. BAD_USER_INPUT (field clientId) when it is ' +
    'unknown or disabled.',
} as const;

const RegisterInput = builder.inputType('RegisterInput', {
  fields: (t) => ({
    email: t.string(),
    password: t.string({ description: '8 to 72 bytes in UTF-8.' }),
    displayName: t.string({ required: false, description: 'At most 100 characters.' }),
    tokenDelivery: t.field(tokenDeliveryField),
    clientId: t.field(clientIdField),
  }),
});

const LoginInput = builder.inputType('LoginInput', {
  fields: (t) => ({
    email: t.string(),
    password: t.string(),
    tokenDelivery: t.field(tokenDeliveryField),
    clientId: t.field(clientIdField),
  }),
});

const ChangePasswordInput = builder.inputType('ChangePasswordInput', {
  fields: (t) => ({ currentPassword: t.string(), newPassword: t.string() }),
});

builder.mutationFields((t) => ({
  register: t.field({
    type: AuthPayloadType,
    description: 'Creates a password account and signs it in. EMAIL_TAKEN when the email is in use.',
    extensions: checksCredential('register'),
    args: { input: t.arg({ type: RegisterInput }) },
    resolve: async (_root, { input }, context) => {
      const tokenDelivery = deliveryOf(context, input.tokenDelivery);
      return signedIn(
        context,
        delivered(context, await register(context.services, context.call, { ...input, tokenDelivery })),
      );
    },
  }),
  login: t.field({
    type: AuthPayloadType,
    description: 'Signs in with email and password: a new session. INVALID_CREDENTIALS for any mismatch.',
    extensions: checksCredential('login'),
    args: { input: t.arg({ type: LoginInput }) },
    resolve: async (_root, { input }, context) => {
      const tokenDelivery = deliveryOf(context, input.tokenDelivery);
      return signedIn(
        context,
        delivered(context, await login(context.services, context.call, { ...input, tokenDelivery })),
      );
    },
  }),
  refresh: t.field({
    type: AuthPayloadType,
    description:
      'Spends a refresh token for a new access token and a new refresh token (rotation). Without the argument it ' +
      'spends the refresh cookie and sets the rotated one.',
    extensions: checksCredential('refresh'),
    args: { refreshToken: t.arg.string({ required: false }) },
    resolve: async (_root, args, context) => signedIn(context, await refreshed(context, args.refreshToken)),
  }),
  changePassword: t.field({
    type: AuthPayloadType,
    description: 'Sets a new password, revokes every other session and rotates the current one.',
    extensions: checksCredential(),
    authScopes: { scope: 'profile:write' },
    args: { input: t.arg({ type: ChangePasswordInput }) },
    resolve: async (_root, { input }, context) =>
      delivered(
        context,
        await changePassword(context.services, context.call, {
          ...input,
          // A cookie session's rotated token must reach the cookie the browser holds: the request carries it.
          canSetCookie: context.auth !== null && context.refreshCookie.carries(context.auth.sid),
        }),
      ),
  }),
}));
