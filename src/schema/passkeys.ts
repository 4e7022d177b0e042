// Passkeys (WebAuthn): Passkey, User.passkeys, registration, renaming and removal, and the passwordless sign-in
// (startPasskeyLogin, loginWithPasskey).
import type { PasskeyRow } from '../db/entities.ts';
import {
  finishPasskeyRegistration,
  listPasskeys,
  loginWithPasskey,
  type PasskeyChallenge,
  removePasskey,
  renamePasskey,
  startPasskeyLogin,
  startPasskeyRegistration,
} from '../mfa/passkeys.ts';
import { AuthPayloadType, clientIdField } from './auth.ts';
import { builder } from './builder.ts';
import { isSelf, signedIn } from './context.ts';
import { checksCredential } from './marks.ts';
import { delivered, deliveryOf, tokenDeliveryField } from './token-delivery.ts';
import { UserType } from './user.ts';

export const PasskeyType = builder.objectRef<PasskeyRow>('Passkey').implement({
  description: 'A WebAuthn credential (passkey) of the account holder.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.string({ nullable: true, resolve: (passkey) => passkey.name ?? null }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    lastUsedAt: t.field({ type: 'DateTime', nullable: true, resolve: (passkey) => passkey.lastUsedAt ?? null }),
  }),
});

const PasskeyChallengeType = builder.objectRef<PasskeyChallenge>('PasskeyChallenge').implement({
  description:
    'A passwordless sign-in started: answer `options` with navigator.credentials.get, then loginWithPasskey.',
  fields: (t) => ({
    challengeId: t.exposeID('challengeId', { description: 'Names the challenge in loginWithPasskey.' }),
    options: t.field({
      type: 'JSON',
      description: 'PublicKeyCredentialRequestOptionsJSON (single-use challenge, valid 5 minutes).',
      resolve: (challenge) => challenge.options,
    }),
  }),
});

const PasskeyLoginInput = builder.inputType('PasskeyLoginInput', {
  fields: (t) => ({
    challengeId: t.id({ description: 'From startPasskeyLogin.' }),
    response: t.field({
      type: 'JSON',
      description: "AuthenticationResponseJSON: the browser's answer to the options.",
    }),
    clientId: t.field(clientIdField),
    tokenDelivery: t.field(tokenDeliveryField),
  }),
});

builder.objectField(UserType, 'passkeys', (t) =>
  t.field({
    type: [PasskeyType],
    description: "The account's passkeys, oldest first: the account holder only.",
    authScopes: (user, _args, context) => isSelf(context, user.id),
    resolve: (user, _args, context) => listPasskeys(context.call, user.id),
  }),
);

builder.mutationFields((t) => ({
  startPasskeyRegistration: t.field({
    type: 'JSON',
    description:
      'PublicKeyCredentialCreationOptionsJSON for a new passkey of the caller (user verification and a resident ' +
      'key required); answer it with navigator.credentials.create, then finishPasskeyRegistration.',
    authScopes: { authenticated: true },
    resolve: (_root, _args, context) => startPasskeyRegistration(context.services, context.call),
  }),
  finishPasskeyRegistration: t.field({
    type: PasskeyType,
    description:
      "Adds the passkey answering the caller's registration and revokes their other sessions (MFA_CHANGED). " +
      'BAD_USER_INPUT (field response) when it does not verify or its registration expired.',
    authScopes: { authenticated: true },
    args: {
      response: t.arg({ type: 'JSON', description: 'RegistrationResponseJSON.' }),
      name: t.arg.string({ required: false, description: 'At most 100 characters.' }),
    },
    resolve: (_root, args, context) => finishPasskeyRegistration(context.services, context.call, args),
  }),
  renamePasskey: t.field({
    type: PasskeyType,
    description: "Names one of the caller's passkeys (null: no name). NOT_FOUND for an unknown id or another's.",
    authScopes: { authenticated: true },
    args: { id: t.arg.id(), name: t.arg.string({ required: false, description: 'At most 100 characters.' }) },
    resolve: (_root, args, context) => renamePasskey(context.call, { id: String(args.id), name: args.name }),
  }),
  removePasskey: t.field({
    type: UserType,
    description:
      "Removes one of the caller's passkeys and revokes their other sessions (MFA_CHANGED). NOT_FOUND for an " +
      "unknown id or another user's.",
    authScopes: { authenticated: true },
    args: { id: t.arg.id() },
    resolve: (_root, args, context) => removePasskey(context.services, context.call, { id: String(args.id) }),
  }),
  startPasskeyLogin: t.field({
    type: PasskeyChallengeType,
    description:
      "Starts a passwordless sign-in. With an email, only that account's passkeys can answer; without one, any " +
      'discoverable passkey. RATE_LIMITED past RATE_LIMIT_PASSKEY_START_IP per client IP.',
    args: { email: t.arg.string({ required: false }) },
    resolve: (_root, args, context) => startPasskeyLogin(context.services, context.call, args),
  }),
  loginWithPasskey: t.field({
    type: AuthPayloadType,
    description:
      'Signs in with a passkey assertion (both factors): a new session. INVALID_CREDENTIALS for any failure.',
    extensions: checksCredential('passkey'),
    args: { input: t.arg({ type: PasskeyLoginInput }) },
    resolve: async (_root, { input }, context) => {
      const tokenDelivery = deliveryOf(context, input.tokenDelivery);
      return signedIn(
        context,
        delivered(
          context,
          await loginWithPasskey(context.services, context.call, {
            ...input,
            challengeId: String(input.challengeId),
            tokenDelivery,
          }),
        ),
      );
    },
  }),
}));
