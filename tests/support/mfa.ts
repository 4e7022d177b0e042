// The second factor from a test's side: TOTP codes computed with otplib (an implementation independent of the
// server's otpauth) at the injected clock's time, and enrolment through the public API.
import { generateSync } from 'otplib';
import { expect } from 'vitest';
import type { Gql } from './graphql.ts';

export const TOTP_STEP_MS = 30_000;

/** The TOTP code of `secret` at `now` (ms), `steps` 30-second steps away (negative: earlier). */
export const totpCode = (secret: string, now: number, steps = 0): string =>
  generateSync({ secret, epoch: Math.floor(now / 1000) + steps * 30 });

export const START_TOTP = 'mutation { startTotpEnrollment { secret otpauthUri qrCodeSvg } }';
export const CONFIRM_TOTP = 'mutation($code: String!) { confirmTotpEnrollment(code: $code) { codes } }';
export const DISABLE_TOTP = 'mutation($code: String!) { disableTotp(code: $code) { id mfaEnabled mfaMethods } }';
export const REGENERATE = 'mutation($code: String!) { regenerateRecoveryCodes(code: $code) { codes } }';
export const VERIFY_MFA = `mutation($input: VerifyMfaInput!) { verifyMfa(input: $input) {
  accessToken refreshToken refreshTokenExpiresAt user { id email } session { id current } } }`;
export const MFA_STATUS = '{ me { id mfaEnabled mfaMethods } }';

/** Turns TOTP on for the holder of `token` at `now`: the secret and the 10 recovery codes. */
export async function enrollTotp(gql: Gql, token: string, now: number): Promise<{ secret: string; codes: string[] }> {
  const started = await gql<{ startTotpEnrollment: { secret: string } }>(START_TOTP, {}, { token });
  expect(started.errors).toBeUndefined();
  const secret = started.data?.startTotpEnrollment.secret as string;
  const confirmed = await gql<{ confirmTotpEnrollment: { codes: string[] } }>(
    CONFIRM_TOTP,
    { code: totpCode(secret, now) },
    { token },
  );
  expect(confirmed.errors).toBeUndefined();
  return { secret, codes: confirmed.data?.confirmTotpEnrollment.codes as string[] };
}
