// The sign-in's MFA step (mfaToken): 256 random bits handed out with MFA_REQUIRED, kept in the KeyValueStore only
// as a hash, bound to the user, the client, the token delivery and this one attempt; single use, 5 minutes, dead
// after 5 tries.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { TokenDelivery } from '../sessions/sessions.ts';
import type { KeyValueStore } from '../store/store.ts';

export const MFA_TOKEN_TTL_MS = 5 * 60_000;
export const MFA_MAX_TRIES = 5;
// Garbage collection only: expiry is decided against the injected clock.
const STORE_TTL_MS = MFA_TOKEN_TTL_MS + 60_000;

/**
 * What the first step proved, checked again by verifyMfa: a password changed or reset meanwhile (which ends every
 * session) or a provider link removed meanwhile ends the step too.
 */
export type FirstFactor =
  | { readonly kind: 'password'; readonly stamp: string }
  | { readonly kind: 'link'; readonly linkId: string };

export interface MfaChallenge {
  /** Names this step to others (the passkey challenge bound to it, the tries counter); never the token. */
  readonly id: string;
  readonly userId: string;
  readonly clientId: string;
  readonly delivery: TokenDelivery;
  readonly firstFactor: FirstFactor;
  readonly expiresAt: number;
}

/** A password's stamp for FirstFactor: a digest of its stored hash, which changes with every new password. */
export const passwordStamp = (passwordHash: string | null | undefined): string =>
  createHash('sha256')
    .update(`mfa-first-factor:${passwordHash ?? ''}`)
    .digest('base64url');

const tokenKey = (token: string) => `mfa-token:${createHash('sha256').update(token).digest('base64url')}`;
const triesKey = (challenge: MfaChallenge) => `mfa-tries:${challenge.id}`;

export class MfaChallenges {
  readonly #store: KeyValueStore;
  readonly #clock: Clock;

  constructor(store: KeyValueStore, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  /** A new step for the user: the mfaToken (for the client, once) and what it is bound to. */
  async issue(binding: Omit<MfaChallenge, 'id' | 'expiresAt'>): Promise<{ token: string; challenge: MfaChallenge }> {
    const token = randomBytes(32).toString('base64url');
    const challenge: MfaChallenge = { ...binding, id: randomUUID(), expiresAt: this.#clock.now() + MFA_TOKEN_TTL_MS };
    await this.#store.set(tokenKey(token), JSON.stringify(challenge), STORE_TTL_MS);
    return { token, challenge };
  }

  /** The live step of `token`; null when it is unknown, spent, dead or expired. */
  async find(token: string): Promise<MfaChallenge | null> {
    if (token.length === 0 || token.length > 128) return null;
    const raw = await this.#store.get(tokenKey(token));
    if (raw === null) return null;
    const challenge = JSON.parse(raw) as MfaChallenge;
    if (challenge.expiresAt <= this.#clock.now()) {
      await this.#store.delete(tokenKey(token));
      return null;
    }
    return challenge;
  }

  /**
   * Counts one try at the step, atomically, before anything is compared; false (and the token deleted) past
   * MFA_MAX_TRIES: of any number of concurrent tries, at most that many are compared.
   */
  async tryOnce(token: string, challenge: MfaChallenge): Promise<{ allowed: boolean; tries: number }> {
    const tries = await this.#store.increment(triesKey(challenge), STORE_TTL_MS);
    if (tries > MFA_MAX_TRIES) {
      await this.#store.delete(tokenKey(token));
      return { allowed: false, tries };
    }
    return { allowed: true, tries };
  }

  /** After a wrong factor: the last allowed try kills the token, so a later right one finds nothing. */
  async failed(token: string, tries: number): Promise<void> {
    if (tries >= MFA_MAX_TRIES) await this.#store.delete(tokenKey(token));
  }

  /** Spends the token: true for exactly one of concurrent callers, and only for the step it was read as. */
  async spend(token: string, challenge: MfaChallenge): Promise<boolean> {
    const taken = await this.#store.take(tokenKey(token));
    await this.#store.delete(triesKey(challenge));
    return taken !== null && (JSON.parse(taken) as MfaChallenge).id === challenge.id;
  }
}
