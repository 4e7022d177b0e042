// The failed-sign-in limit, per account (the normalised email, whether or not an account has it) and per client
// IP, shared by every check of an account's password; a locked account stays locked twice as long each time it
// is locked again within the back-off cap.
import type { RateLimitsConfig } from '../config.ts';
import { type Attempt, type Charge, reserveAttempt } from './attempts.ts';
import type { Limiter, LimiterFactory } from './limiters.ts';

/** What a failure locked, for the audit trail. */
export interface Lockout {
  readonly scope: 'account' | 'ip';
  readonly retryAfter: number;
  /** How many times the account was locked within the back-off cap (1 for an IP). */
  readonly count: number;
}

/** The lockout counter never refuses; it only counts. */
const LOCKOUT_POINTS = 1_000_000;

export class LoginThrottle {
  readonly #account: Limiter;
  readonly #ip: Limiter;
  /** How many times each account was locked within the last loginMaxBlockSeconds. */
  readonly #lockouts: Limiter;
  readonly #config: RateLimitsConfig;
  /** The client's bucket (rate-limits.ts's ipKey), passed in so that one rule groups addresses everywhere. */
  readonly #ipKey: (ipAddress: string | null) => string;

  constructor(config: RateLimitsConfig, limiters: LimiterFactory, ipKey: (ipAddress: string | null) => string) {
    this.#config = config;
    this.#ipKey = ipKey;
    this.#account = limiters('login-account', config.loginAccount);
    this.#ip = limiters('login-ip', config.loginIp);
    this.#lockouts = limiters('login-lockouts', {
      points: LOCKOUT_POINTS,
      durationSeconds: config.loginMaxBlockSeconds,
    });
  }

  /**
   * Reserves one failed sign-in of the account `email` and of the client's IP (its ipKey) before a password is
   * compared: RATE_LIMITED, comparing nothing, while either is used up or locked. The right password forgets
   * the account's failures and back-off and gives the IP its attempt back; a wrong one keeps both spent and
   * settles to the lockouts it caused (the account, the IP, both or none). Run it through withAttempt: a check
   * that fails before the comparison (the account could not be read) then costs neither counter anything.
   */
  reserve(email: string, ipAddress: string | null): Promise<Attempt<Lockout[]>> {
    const account: Charge = { limiter: this.#account, key: email, onMatch: 'reset' };
    const client: Charge = { limiter: this.#ip, key: this.#ipKey(ipAddress), onMatch: 'refund' };
    return reserveAttempt({
      // The account first: guesses at a locked account then never touch the IP's count.
      charges: [account, client],
      onMatch: () => this.#lockouts.reset(email),
      onMismatch: async (exhausted) => {
        const locked: Lockout[] = [];
        if (exhausted.includes(account)) locked.push(await this.#lock(email));
        if (exhausted.includes(client)) {
          locked.push({ scope: 'ip', retryAfter: this.#config.loginIp.durationSeconds, count: 1 });
        }
        return locked;
      },
    });
  }

  /**
   * Reserves one failed sign-in of the client's IP alone, for a check that names no account up front (a passkey
   * assertion): RATE_LIMITED while the IP is used up; settles as `reserve` does for the IP.
   */
  reserveIp(ipAddress: string | null): Promise<Attempt<Lockout[]>> {
    const client: Charge = { limiter: this.#ip, key: this.#ipKey(ipAddress), onMatch: 'refund' };
    return reserveAttempt({
      charges: [client],
      onMismatch: async (exhausted) =>
        exhausted.includes(client) ? [{ scope: 'ip', retryAfter: this.#config.loginIp.durationSeconds, count: 1 }] : [],
    });
  }

  /** Forgets the account's failures and back-off: whoever proves the email (a reset, a verification) is let in. */
  async clear(email: string): Promise<void> {
    await Promise.all([this.#account.reset(email), this.#lockouts.reset(email)]);
  }

  /** Exponential back-off: the window's length for the first lockout, doubling with each one after it. */
  async #lock(email: string): Promise<Lockout> {
    const lockouts = await this.#lockouts.consume(email);
    const count = lockouts.allowed ? LOCKOUT_POINTS - lockouts.remaining : LOCKOUT_POINTS;
    const seconds = Math.min(
      this.#config.loginAccount.durationSeconds * 2 ** Math.min(count - 1, 30),
      this.#config.loginMaxBlockSeconds,
    );
    await this.#account.block(email, seconds);
    return { scope: 'account', retryAfter: seconds, count };
  }
}
