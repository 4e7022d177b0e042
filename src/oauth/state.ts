// OAuth state: what a sign-in attempt started with (provider, client, redirect URI, PKCE verifier, nonce, and for
// linking the user), kept 10 minutes in the key-value store (Redis when configured) and taken once.
import { DEFAULT_CLIENT_ID } from '../clients/registry.ts';
import type { Clock } from '../clock.ts';
import type { KeyValueStore } from '../store/store.ts';

export const STATE_TTL_MS = 10 * 60_000;

export interface OAuthAttempt {
  readonly provider: string;
  /** The client (app) that started it: the session it ends in is that client's, whatever the callback says. */
  readonly clientId: string;
  readonly redirectUri: string;
  readonly codeVerifier: string;
  readonly nonce: string;
  /** Set when a signed-in user started the attempt to link a provider account; null for a sign-in. */
  readonly linkUserId: string | null;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
}

const key = (state: string) => `oauth:state:${state}`;

// openid-client's randomState() is 43 base64url characters; anything else was never ours.
const STATE = /^[A-Za-z0-9_-]{16,128}$/;

export class OAuthStates {
  readonly #store: KeyValueStore;
  readonly #clock: Clock;

  constructor(store: KeyValueStore, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  async save(state: string, attempt: Omit<OAuthAttempt, 'createdAt'>): Promise<void> {
    const value: OAuthAttempt = { ...attempt, createdAt: this.#clock.now() };
    await this.#store.set(key(state), JSON.stringify(value), STATE_TTL_MS);
  }

  /** The attempt for `state`, removed in the same step (single use); null when unknown, spent or expired. */
  async take(state: string): Promise<OAuthAttempt | null> {
    if (!STATE.test(state)) return null;
    const raw = await this.#store.take(key(state));
    if (raw === null) return null;
    const stored = JSON.parse(raw) as Omit<OAuthAttempt, 'clientId'> & { clientId?: string };
    // A state saved by an instance from before clients (a rolling upgrade) was a sign-in for the default client.
    const attempt: OAuthAttempt = { ...stored, clientId: stored.clientId ?? DEFAULT_CLIENT_ID };
    // The store's TTL already removes it; this also holds for a store whose clock differs from ours.
    return this.#clock.now() - attempt.createdAt <= STATE_TTL_MS ? attempt : null;
  }
}
