// The account holder's own account: email verification, password reset, profile, deletion and data export.
import { deleteAccount } from '../account/delete-account.ts';
import { requestEmailVerification, verifyEmail } from '../account/email-verification.ts';
import { exportMyData } from '../account/export.ts';
import { requestPasswordReset, resetPassword } from '../account/password-reset.ts';
import { updateProfile } from '../account/profile.ts';
import { builder } from './builder.ts';
import { checksCredential } from './marks.ts';
import { UserType } from './user.ts';

const ResetPasswordInput = builder.inputType('ResetPasswordInput', {
  fields: (t) => ({
    email: t.string(),
    code: t.string({ description: 'The code from the reset mail (case does not matter).' }),
    newPassword: t.string({ description: '8 to 72 bytes in UTF-8.' }),
  }),
});

const UpdateProfileInput = builder.inputType('UpdateProfileInput', {
  fields: (t) => ({
    displayName: t.string({
      required: false,
      description: 'At most 100 characters; null or an empty string clears it, leaving it out keeps it.',
    }),
  }),
});

builder.queryField('myData', (t) =>
  t.field({
    type: 'JSON',
    description:
      'Everything stored about the caller (account, sessions, linked accounts, audit events), for data access requests. No secrets.',
    authScopes: { scope: 'profile:read' },
    resolve: (_root, _args, context) => exportMyData(context.services, context.call),
  }),
);

builder.mutationFields((t) => ({
  requestEmailVerification: t.boolean({
    description:
      "Mails a code to the caller's address (replacing any earlier one); false when it is already verified. " +
      'RATE_LIMITED (with retryAfter seconds) past a few requests per account.',
    authScopes: { authenticated: true },
    resolve: (_root, _args, context) => requestEmailVerification(context.services, context.call),
  }),
  verifyEmail: t.field({
    type: UserType,
    description: "Spends the code of the caller's pending verification and marks the email verified. INVALID_CODE.",
    extensions: checksCredential(),
    authScopes: { authenticated: true },
    args: { code: t.arg.string() },
    resolve: (_root, args, context) => verifyEmail(context.services, context.call, args),
  }),
  requestPasswordReset: t.boolean({
    description: 'Mails a reset code when the address has an account. Always true, whether it has or not.',
    args: { email: t.arg.string() },
    resolve: (_root, args, context) => requestPasswordReset(context.services, context.call, args),
  }),
  resetPassword: t.boolean({
    description:
      'Sets a new password with a reset code, marks the email verified and revokes every session. INVALID_CODE.',
    extensions: checksCredential(),
    args: { input: t.arg({ type: ResetPasswordInput }) },
    resolve: (_root, { input }, context) => resetPassword(context.services, context.call, input),
  }),
  updateProfile: t.field({
    type: UserType,
    description: "Updates the caller's profile.",
    authScopes: { scope: 'profile:write' },
    args: { input: t.arg({ type: UpdateProfileInput }) },
    resolve: (_root, { input }, context) => updateProfile(context.services, context.call, input),
  }),
  deleteAccount: t.boolean({
    description:
      "Deletes the caller's account, sessions and linked accounts for good. The password is required when the " +
      'account has one (INVALID_CREDENTIALS when wrong).',
    extensions: checksCredential(),
    authScopes: { authenticated: true },
    args: { password: t.arg.string({ required: false }) },
    resolve: (_root, args, context) => deleteAccount(context.services, context.call, args),
  }),
}));
