// One-time codes for email verification and password reset: 6 characters from an unambiguous alphabet,
// single use, valid 5 minutes, at most 5 wrong tries, stored only as an HMAC in the KeyValueStore.
import { createHmac, randomBytes, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.ts';
import { AuthError } from '../errors.ts';
import type { KeyValueStore } from '../store/store.ts';

export const CODE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
export const CODE_LENGTH = 6;
export const CODE_TTL_MS = 5 * 60_000;
export const MAX_WRONG_ATTEMPTS = 5;

export type CodePurpose = 'email-verification' | 'password-reset';
export const CODE_PURPOSES: readonly CodePurpose[] = ['email-verification', 'password-reset'];

/** Why a code was refused; for the audit trail only (the caller sees INVALID_CODE for all of them). */
export type CodeRejection = 'NO_CODE' | 'EXPIRED' | 'WRONG_CODE' | 'TOO_MANY_ATTEMPTS';

interface StoredCode {
  /** Tells one issued code from the next, so attempts are counted per code. */
  readonly id: string;
  readonly purpose: CodePurpose;
  readonly userId: string;
  /** base64url key of the HMAC below; random per code, so equal codes never hash alike. */
  readonly salt: string;
  /** HMAC-SHA256 (hex) of `purpose:userId:CODE`. */
  readonly hash: string;
  /** Milliseconds since the epoch, from the injected clock (the store's TTL only collects garbage). */
  readonly expiresAt: number;
}

const codeKey = (purpose: CodePurpose, userId: string) => `code:${purpose}:${userId}`;
const attemptsKey = (code: StoredCode) => `code-attempts:${code.purpose}:${code.userId}:${code.id}`;
// Garbage collection only: a little longer than the code lives, so expiry is decided against the clock.
const STORE_TTL_MS = CODE_TTL_MS + 60_000;

function digest(purpose: CodePurpose, userId: string, code: string, salt: string): Buffer {
  return createHmac('sha256', Buffer.from(salt, 'base64url')).update(`${purpose}:${userId}:${code}`).digest();
}

/** What the caller hears for a wrong, expired, spent, dead or missing code alike. */
export const invalidCode = (): AuthError =>
  new AuthError('INVALID_CODE', 'The code is wrong, expired or already used', { field: 'code' });

/** Codes are typed by people: surrounding space and lower case do not matter. */
export const normalizeCode = (input: string): string => input.trim().toUpperCase();

export function generateCode(): string {
  let code = '';
  for (let i = 0; i < CODE_LENGTH; i++) code += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
  return code;
}

export class OneTimeCodes {
  readonly #store: KeyValueStore;
  readonly #clock: Clock;

  constructor(store: KeyValueStore, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  /** Creates a code for (purpose, user), replacing any earlier one, and returns it; only its HMAC is stored. */
  async issue(purpose: CodePurpose, userId: string): Promise<string> {
    const code = generateCode();
    const stored = this.#seal(purpose, userId, code);
    await this.#store.set(codeKey(purpose, userId), JSON.stringify(stored), STORE_TTL_MS);
    return code;
  }

  /**
   * Does the same work as `issue` (generate, hash, one store write) without creating a usable code, so that a
   * request for an unknown account takes as long as one for a known account.
   */
  async decoy(): Promise<void> {
    const stored = this.#seal('password-reset', randomUUID(), generateCode());
    await this.#store.set(`code-decoy:${stored.userId}`, JSON.stringify(stored), 1_000);
  }

  /**
   * Spends the code of (purpose, user) if `input` is it. Every try counts: once a code has seen
   * MAX_WRONG_ATTEMPTS tries it is deleted, so even concurrent guesses get at most that many comparisons.
   * Returns null on success, or why the code was refused.
   */
  async consume(purpose: CodePurpose, userId: string, input: string): Promise<CodeRejection | null> {
    const key = codeKey(purpose, userId);
    const raw = await this.#store.get(key);
    if (raw === null) return 'NO_CODE';
    const stored = JSON.parse(raw) as StoredCode;
    if (stored.expiresAt <= this.#clock.now()) {
      await this.#deleteIfCurrent(key, stored);
      return 'EXPIRED';
    }
    const tries = await this.#store.increment(attemptsKey(stored), STORE_TTL_MS);
    if (tries > MAX_WRONG_ATTEMPTS) {
      await this.#deleteIfCurrent(key, stored);
      return 'TOO_MANY_ATTEMPTS';
    }
    const presented = digest(purpose, userId, normalizeCode(input), stored.salt);
    if (!timingSafeEqual(presented, Buffer.from(stored.hash, 'hex'))) {
      // The fifth wrong try kills the code: a sixth, even the right one, finds nothing.
      if (tries >= MAX_WRONG_ATTEMPTS) await this.#deleteIfCurrent(key, stored);
      return 'WRONG_CODE';
    }
    // Take, not get: of two concurrent right answers only one spends the code.
    const taken = await this.#store.take(key);
    await this.#store.delete(attemptsKey(stored));
    if (taken === null) return 'NO_CODE';
    if ((JSON.parse(taken) as StoredCode).id !== stored.id) {
      // Replaced by a newer request between our read and our take: that one stays usable.
      await this.#store.set(key, taken, STORE_TTL_MS);
      return 'NO_CODE';
    }
    return null;
  }

  /** Deletes every pending code of a user (account deletion). */
  async discardAll(userId: string): Promise<void> {
    await this.#store.delete(...CODE_PURPOSES.map((purpose) => codeKey(purpose, userId)));
  }

  /** Deletes the pending code of one purpose (e.g. a verification code made moot by a reset). */
  async discard(purpose: CodePurpose, userId: string): Promise<void> {
    await this.#store.delete(codeKey(purpose, userId));
  }

  #seal(purpose: CodePurpose, userId: string, code: string): StoredCode {
    const salt = randomBytes(16).toString('base64url');
    return {
      id: randomUUID(),
      purpose,
      userId,
      salt,
      hash: digest(purpose, userId, code, salt).toString('hex'),
      expiresAt: this.#clock.now() + CODE_TTL_MS,
    };
  }

  async #deleteIfCurrent(key: string, stored: StoredCode): Promise<void> {
    // A new code may have replaced this one meanwhile; only the one we judged is deleted.
    const current = await this.#store.get(key);
    if (current !== null && (JSON.parse(current) as StoredCode).id === stored.id) await this.#store.delete(key);
  }
}
