// The seam between the second-factor sign-in (MFA_REQUIRED, verifyMfa) and passkeys: what the MFA step asks of
// passkeys, implemented by src/mfa/passkeys.ts; and the one question both sign-ins with a passkey ask again before
// their session commits.
import { Passkey } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';

/**
 * Whether passkey `passkeyId` is still `userId`'s, read on `em` (a sign-in's transaction, after its session's
 * INSERT: removing a passkey revokes every session, so one removed since the assertion must not see a session open).
 */
export const passkeyStands = async (em: Em, userId: string, passkeyId: string): Promise<boolean> =>
  (await em.count(Passkey, { id: passkeyId, user: userId })) > 0;

export interface PasskeyFactor {
  /**
   * PublicKeyCredentialRequestOptionsJSON for `userId`'s passkeys, whose challenge is bound to the MFA step
   * `mfaTokenId` (single use, expiring with it); undefined when the user has no passkey.
   */
  optionsFor(em: Em, userId: string, mfaTokenId: string): Promise<Record<string, unknown> | undefined>;
  /**
   * The id of the passkey (passkeys.id) when `response` (AuthenticationResponseJSON) is a valid assertion by one of
   * `userId`'s passkeys for the challenge bound to `mfaTokenId`: challenge, origin, RP id, signature and counter
   * checked (WebAuthn §7.2); the challenge is spent whatever the outcome. Never throws for a malformed response: null.
   */
  verify(em: Em, userId: string, mfaTokenId: string, response: unknown): Promise<string | null>;
}
