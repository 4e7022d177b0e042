// The second factor: TOTP enrolment, recovery codes, the sign-in's MFA step (verifyMfa), resetUserMfa, and
// User.mfaEnabled / User.mfaMethods.
import { resetUserMfa } from '../mfa/reset.ts';
import { MFA_METHODS, mfaMethodsOf } from '../mfa/status.ts';
import {
  confirmTotpEnrollment,
  disableTotp,
  regenerateRecoveryCodes,
  startTotpEnrollment,
  type TotpEnrollment,
} from '../mfa/totp-enrollment.ts';
import { verifyMfa } from '../mfa/verify.ts';
import { AuthPayloadType } from './auth.ts';
import { builder } from './builder.ts';
import { type Context, isSelf, signedIn } from './context.ts';
import { checksCredential } from './marks.ts';
import { delivered, deliveryOf, TokenDeliveryEnum } from './token-delivery.ts';
import { type UserSource, UserType } from './user.ts';

export const MfaMethodEnum = builder.enumType('MfaMethod', {
  description: 'A second factor a user can answer MFA_REQUIRED with.',
  values: MFA_METHODS,
});

const TotpEnrollmentType = builder.objectRef<TotpEnrollment>('TotpEnrollment').implement({
  description: 'A pending TOTP secret: shown here once, confirmed with confirmTotpEnrollment.',
  fields: (t) => ({
    secret: t.exposeString('secret', { description: 'Base32, for typing into an authenticator app.' }),
    otpauthUri: t.exposeString('otpauthUri', { description: 'otpauth://totp/… naming PRODUCT_NAME and the email.' }),
    qrCodeSvg: t.exposeString('qrCodeSvg', { description: 'The otpauth URI as a QR code (SVG markup).' }),
  }),
});

const RecoveryCodesType = builder.objectRef<{ codes: string[] }>('RecoveryCodes').implement({
  description: 'Single-use recovery codes, shown this once; only their hashes are kept.',
  fields: (t) => ({ codes: t.exposeStringList('codes') }),
});

const VerifyMfaInput = builder.inputType('VerifyMfaInput', {
  fields: (t) => ({
    mfaToken: t.string({ description: 'extensions.mfaToken of the MFA_REQUIRED answer.' }),
    code: t.string({ required: false, description: 'A current TOTP code.' }),
    recoveryCode: t.string({ required: false, description: 'An unused recovery code.' }),
    passkeyResponse: t.field({
      type: 'JSON',
      required: false,
      description: 'AuthenticationResponseJSON answering extensions.passkeyOptions.',
    }),
    tokenDelivery: t.field({
      type: TokenDeliveryEnum,
      required: false,
      description: 'BODY or COOKIE; the sign-in’s own choice when left out.',
    }),
  }),
});

/** Self, or scope users:read. */
const selfOrUsersRead = (user: UserSource, _args: unknown, context: Context) =>
  isSelf(context, user.id) ? true : { scope: 'users:read' };

builder.objectFields(UserType, (t) => ({
  mfaEnabled: t.boolean({
    description: 'Whether sign-in asks for a second factor (TOTP on, or a passkey). The account holder, or users:read.',
    authScopes: selfOrUsersRead,
    resolve: async (user, _args, context) =>
      (await mfaMethodsOf(context.call.em, user.id)).some((method) => method !== 'RECOVERY_CODE'),
  }),
  mfaMethods: t.field({
    type: [MfaMethodEnum],
    description:
      'TOTP when on, PASSKEY with a passkey, RECOVERY_CODE while unused recovery codes remain. The account holder, ' +
      'or users:read.',
    authScopes: selfOrUsersRead,
    resolve: (user, _args, context) => mfaMethodsOf(context.call.em, user.id),
  }),
}));

builder.mutationFields((t) => ({
  startTotpEnrollment: t.field({
    type: TotpEnrollmentType,
    description:
      'A new TOTP secret for an authenticator app, pending until confirmTotpEnrollment; replaces a pending one. ' +
      'BAD_USER_INPUT while TOTP is on.',
    authScopes: { scope: 'profile:write' },
    resolve: (_root, _args, context) => startTotpEnrollment(context.services, context.call),
  }),
  confirmTotpEnrollment: t.field({
    type: RecoveryCodesType,
    description:
      "Turns TOTP on with a current code; returns 10 recovery codes (shown once). Ends the user's other sessions.",
    extensions: checksCredential(),
    authScopes: { scope: 'profile:write' },
    args: { code: t.arg.string() },
    resolve: async (_root, { code }, context) => ({
      codes: await confirmTotpEnrollment(context.services, context.call, code),
    }),
  }),
  disableTotp: t.field({
    type: UserType,
    description:
      "Turns TOTP off with a current TOTP code or a recovery code. Ends the user's other sessions; recovery codes " +
      'go too when no passkey is left.',
    extensions: checksCredential(),
    authScopes: { scope: 'profile:write' },
    args: { code: t.arg.string() },
    resolve: (_root, { code }, context) => disableTotp(context.services, context.call, code),
  }),
  regenerateRecoveryCodes: t.field({
    type: RecoveryCodesType,
    description:
      "10 new recovery codes for a current TOTP code; the old ones stop working. Ends the user's other sessions.",
    extensions: checksCredential(),
    authScopes: { scope: 'profile:write' },
    args: { code: t.arg.string() },
    resolve: async (_root, { code }, context) => ({
      codes: await regenerateRecoveryCodes(context.services, context.call, code),
    }),
  }),
  verifyMfa: t.field({
    type: AuthPayloadType,
    description:
      'Finishes a sign-in that answered MFA_REQUIRED, with exactly one factor. INVALID_CODE for a wrong one ' +
      '(the mfaToken dies after 5 tries); UNAUTHENTICATED (INVALID_TOKEN) for a spent, expired or unknown mfaToken.',
    extensions: checksCredential('mfa'),
    args: { input: t.arg({ type: VerifyMfaInput }) },
    resolve: async (_root, { input }, context) =>
      signedIn(
        context,
        delivered(
          context,
          await verifyMfa(context.services, context.call, input, (delivery) => deliveryOf(context, delivery)),
        ),
      ),
  }),
  resetUserMfa: t.field({
    type: UserType,
    description:
      "Removes every second factor of a user (scope users:write): TOTP, recovery codes, passkeys. Ends the user's " +
      'sessions (MFA_CHANGED), the caller’s own excepted.',
    authScopes: { scope: 'users:write' },
    args: { userId: t.arg.id() },
    resolve: (_root, { userId }, context) => resetUserMfa(context.services, context.call, String(userId)),
  }),
}));
