// The WebAuthn relying party (@simplewebauthn/server): options with single-use, 5-minute challenges kept in the
// KeyValueStore, and the checks of a registration or an assertion (challenge, origin, RP id, signature, counter).
import { randomUUID } from 'node:crypto';
import { LockMode } from '@mikro-orm/core';
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import type { Clock } from '../clock.ts';
import type { WebAuthnConfig } from '../config.ts';
import { Passkey, type PasskeyRow, type UserRow } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { transactional } from '../db/transaction.ts';
import type { KeyValueStore } from '../store/store.ts';

/** How long a challenge can be answered. */
export const CHALLENGE_TTL_MS = 5 * 60_000;
// Garbage collection only: expiry is decided against the injected clock.
const STORE_TTL_MS = CHALLENGE_TTL_MS + 60_000;
/** The passkeys column holds 512 characters; WebAuthn allows ids of up to 1023 bytes, which no platform makes. */
const MAX_CREDENTIAL_ID_LENGTH = 512;

/** What a challenge is for; each kind has its own keys, so one can never be answered as another. */
export type ChallengeKind = 'registration' | 'login' | 'mfa';

interface StoredChallenge {
  readonly challenge: string;
  /** The user whose passkey must answer; null: any passkey (a discoverable sign-in). */
  readonly userId: string | null;
  /** Milliseconds since the epoch, from the injected clock. */
  readonly expiresAt: number;
}

/** A new credential, as it is stored. */
export interface NewCredential {
  readonly credentialId: string;
  readonly publicKey: string;
  readonly counter: number;
  readonly transports: string | null;
  readonly deviceType: string;
  readonly backedUp: boolean;
}

/** Why an assertion was refused; for the audit trail only (the caller hears one answer for all of them). */
export type AssertionRejection =
  | 'NO_CHALLENGE'
  | 'MALFORMED_RESPONSE'
  | 'UNKNOWN_PASSKEY'
  | 'OTHER_USER'
  | 'VERIFICATION_FAILED'
  | 'COUNTER_REGRESSION'
  | 'ALREADY_USED';

export type AssertionOutcome =
  | { readonly ok: true; readonly userId: string; readonly passkeyId: string }
  | { readonly ok: false; readonly reason: AssertionRejection; readonly userId?: string; readonly passkeyId?: string };

const challengeKey = (kind: ChallengeKind, id: string) => `webauthn:${kind}:${id}`;

const toBase64Url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
const fromBase64Url = (text: string) => Uint8Array.from(Buffer.from(text, 'base64url'));
/** The WebAuthn user handle of an account: its id's bytes (no personal data, as the spec asks). */
const userHandle = (userId: string) => new TextEncoder().encode(userId);

const transportsOf = (row: Pick<PasskeyRow, 'transports'>): string[] | undefined =>
  row.transports ? row.transports.split(',') : undefined;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

export class WebAuthn {
  readonly #store: KeyValueStore;
  readonly #clock: Clock;
  readonly #settings: WebAuthnConfig;

  constructor(store: KeyValueStore, clock: Clock, settings: WebAuthnConfig) {
    this.#store = store;
    this.#clock = clock;
    this.#settings = settings;
  }

  /**
   * PublicKeyCredentialCreationOptionsJSON for a new passkey of `user` (user verification and a resident key
   * required; the user's passkeys excluded), replacing any registration the user had started.
   */
  async registrationOptions(em: Em, user: UserRow): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const existing = await em.find(Passkey, { user: user.id }, { fields: ['credentialId', 'transports'] });
    const options = await generateRegistrationOptions({
      rpName: this.#settings.rpName,
      rpID: this.#settings.rpId,
      userName: user.email,
      userID: userHandle(user.id),
      userDisplayName: user.displayName ?? user.email,
      timeout: CHALLENGE_TTL_MS,
      attestationType: 'none',
      excludeCredentials: existing.map((row) => ({ id: row.credentialId, transports: transportsOf(row) })),
      authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
    });
    await this.#remember('registration', user.id, options.challenge, user.id);
    return options;
  }

  /**
   * Checks `response` (RegistrationResponseJSON) against the registration `userId` started, spending that
   * challenge whatever the outcome; the credential to store, or undefined when anything is wrong.
   */
  async verifyRegistration(userId: string, response: unknown): Promise<NewCredential | undefined> {
    const stored = await this.#take('registration', userId);
    if (!stored || stored.userId !== userId || !isRecord(response)) return undefined;
    try {
      const verified = await verifyRegistrationResponse({
        response: response as unknown as RegistrationResponseJSON,
        expectedChallenge: stored.challenge,
        expectedOrigin: [...this.#settings.origins],
        expectedRPID: this.#settings.rpId,
        requireUserVerification: true,
      });
      if (!verified.verified) return undefined;
      const { credential, credentialDeviceType, credentialBackedUp } = verified.registrationInfo;
      if (credential.id.length > MAX_CREDENTIAL_ID_LENGTH) return undefined;
      return {
        credentialId: credential.id,
        publicKey: toBase64Url(credential.publicKey),
        counter: credential.counter,
        transports: credential.transports?.length ? credential.transports.join(',').slice(0, 255) : null,
        deviceType: credentialDeviceType,
        backedUp: credentialBackedUp,
      };
    } catch {
      // A malformed or forged response: the library throws for each check it fails.
      return undefined;
    }
  }

  /**
   * PublicKeyCredentialRequestOptionsJSON whose challenge is kept under (kind, id) for an assertion by one of
   * `allowed` (none: any discoverable passkey), to be answered by a passkey of `userId` (null: anyone's).
   */
  async assertionOptions(
    kind: 'login' | 'mfa',
    id: string,
    userId: string | null,
    allowed: readonly Pick<PasskeyRow, 'credentialId' | 'transports'>[],
  ): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const options = await generateAuthenticationOptions({
      rpID: this.#settings.rpId,
      allowCredentials: allowed.map((row) => ({ id: row.credentialId, transports: transportsOf(row) })),
      userVerification: 'required',
      timeout: CHALLENGE_TTL_MS,
    });
    await this.#remember(kind, id, options.challenge, userId);
    return options;
  }

  /**
   * Checks an assertion answering the challenge kept under (kind, id), which it spends whatever the outcome:
   * the passkey is looked up by the response's credential id and must be the challenge's user's; then
   * challenge, origin, RP id, user verification and signature (the library), and the signature counter, which
   * must grow when either side has one (WebAuthn §6.1.1). The passkey's row is locked while its counter is
   * checked and moved on, so of two concurrent uses of one assertion only one is accepted.
   */
  async verifyAssertion(em: Em, kind: 'login' | 'mfa', id: string, response: unknown): Promise<AssertionOutcome> {
    const stored = await this.#take(kind, id);
    if (!stored) return { ok: false, reason: 'NO_CHALLENGE' };
    const credentialId = isRecord(response) ? response.id : undefined;
    if (
      !isRecord(response) ||
      !isRecord(response.response) ||
      typeof credentialId !== 'string' ||
      credentialId.length === 0 ||
      credentialId.length > MAX_CREDENTIAL_ID_LENGTH
    ) {
      return { ok: false, reason: 'MALFORMED_RESPONSE' };
    }
    return transactional(em, async (tx): Promise<AssertionOutcome> => {
      const [row] = await tx.find(
        Passkey,
        { credentialId },
        { lockMode: LockMode.PESSIMISTIC_WRITE, disableIdentityMap: true },
      );
      if (!row) return { ok: false, reason: 'UNKNOWN_PASSKEY' };
      const userId = row.user.id;
      const refused = (reason: AssertionRejection): AssertionOutcome => ({
        ok: false,
        reason,
        userId,
        passkeyId: row.id,
      });
      if (stored.userId !== null && stored.userId !== userId) return refused('OTHER_USER');
      // A discoverable credential names its account too: it must be the one the passkey was registered to. An
      // empty handle names none (Safari sends one for a passkey on another device answering allowCredentials).
      const handle = (response as { response: Record<string, unknown> }).response.userHandle;
      if (handle != null && handle !== '' && handle !== toBase64Url(userHandle(userId))) return refused('OTHER_USER');
      let newCounter: number;
      try {
        const verified = await verifyAuthenticationResponse({
          response: response as unknown as AuthenticationResponseJSON,
          expectedChallenge: stored.challenge,
          expectedOrigin: [...this.#settings.origins],
          expectedRPID: this.#settings.rpId,
          requireUserVerification: true,
          // The counter is checked below, against the locked row, so that a regression is told apart.
          credential: { id: row.credentialId, publicKey: fromBase64Url(row.publicKey), counter: 0 },
        });
        if (!verified.verified) return refused('VERIFICATION_FAILED');
        newCounter = verified.authenticationInfo.newCounter;
      } catch {
        return refused('VERIFICATION_FAILED');
      }
      if ((newCounter > 0 || row.counter > 0) && newCounter <= row.counter) return refused('COUNTER_REGRESSION');
      // Compare-and-set on the counter as read: on SQLite, where the read took no lock, a concurrent use that
      // moved it first makes this one update nothing.
      const updated = await tx.nativeUpdate(
        Passkey,
        { id: row.id, counter: row.counter },
        { counter: newCounter, lastUsedAt: new Date(this.#clock.now()) },
      );
      if (updated !== 1) {
        // The passkey removed meanwhile is not a replay: told as the locked read above tells it.
        return refused((await tx.count(Passkey, { id: row.id })) > 0 ? 'ALREADY_USED' : 'UNKNOWN_PASSKEY');
      }
      return { ok: true, userId, passkeyId: row.id };
    });
  }

  /** Forgets the challenge kept under (kind, id), if any (an MFA step that ended otherwise). */
  async discard(kind: ChallengeKind, id: string): Promise<void> {
    await this.#store.delete(challengeKey(kind, id));
  }

  /** A challenge id for a sign-in: random, and the key its challenge is kept under. */
  newChallengeId(): string {
    return randomUUID();
  }

  async #remember(kind: ChallengeKind, id: string, challenge: string, userId: string | null): Promise<void> {
    const stored: StoredChallenge = { challenge, userId, expiresAt: this.#clock.now() + CHALLENGE_TTL_MS };
    await this.#store.set(challengeKey(kind, id), JSON.stringify(stored), STORE_TTL_MS);
  }

  /** Takes the challenge once (of concurrent takers, one gets it); undefined when missing or expired. */
  async #take(kind: ChallengeKind, id: string): Promise<StoredChallenge | undefined> {
    const raw = await this.#store.take(challengeKey(kind, id));
    if (raw === null) return undefined;
    const stored = JSON.parse(raw) as StoredChallenge;
    return stored.expiresAt > this.#clock.now() ? stored : undefined;
  }
}
