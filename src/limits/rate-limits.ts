// The app's named throttles (RATE_LIMIT_*), built once in createApp, and the login throttle's rules:
// failures are counted per account and per IP, checked before any password is, and a locked account
// stays locked twice as long each time it is locked again within the back-off cap.
import type { RateLimitsConfig } from '../config.ts';
import { type Limiter, type LimiterFactory, rateLimited } from './limiters.ts';

export interface RateLimits {
  readonly login: LoginThrottle;
  /** Registrations per client IP. */
  readonly register: Limiter;
  /** Refreshes per session. */
  readonly refresh: Limiter;
  /** startOAuth calls per client IP. */
  readonly oauthStart: Limiter;
}

/** What a failure locked, for the audit trail. */
export interface Lockout {
  readonly scope: 'account' | 'ip';
  readonly retryAfter: number;
  /** How many times the account was locked within the back-off cap (1 for an IP). */
  readonly count: number;
}

/** Clients without a known address share one bucket rather than escaping the limit. */
export const ipKey = (ipAddress: string | null): string => ipAddress ?? 'unknown';

export function createRateLimits(config: RateLimitsConfig, limiters: LimiterFactory): RateLimits {
  return {
    login: new LoginThrottle(config, limiters),
    register: limiters('register-ip', config.registerIp),
    refresh: limiters('refresh-session', config.refreshSession),
    oauthStart: limiters('oauth-start-ip', config.oauthStartIp),
  };
}

/** Counts one action for `key`; RATE_LIMITED (with retryAfter) once over the limit. */
export async function enforce(limiter: Limiter, key: string): Promise<void> {
  const outcome = await limiter.consume(key);
  if (!outcome.allowed) throw rateLimited(outcome.retryAfterMs);
}

/** Refuses (RATE_LIMITED) without counting when `key` has used up its actions. */
export async function ensureAllowed(limiter: Limiter, key: string): Promise<void> {
  const outcome = await limiter.check(key);
  if (!outcome.allowed) throw rateLimited(outcome.retryAfterMs);
}

/** The lockout counter never refuses; it only counts. */
const LOCKOUT_POINTS = 1_000_000;

export class LoginThrottle {
  readonly #account: Limiter;
  readonly #ip: Limiter;
  /** How many times each account was locked within the last loginMaxBlockSeconds. */
  readonly #lockouts: Limiter;
  readonly #config: RateLimitsConfig;

  constructor(config: RateLimitsConfig, limiters: LimiterFactory) {
    this.#config = config;
    this.#account = limiters('login-account', config.loginAccount);
    this.#ip = limiters('login-ip', config.loginIp);
    this.#lockouts = limiters('login-lockouts', {
      points: LOCKOUT_POINTS,
      durationSeconds: config.loginMaxBlockSeconds,
    });
  }

  /** RATE_LIMITED when the account or the IP is locked; counts nothing, so it is cheap for legitimate users. */
  async check(email: string, ipAddress: string | null): Promise<void> {
    const [account, ip] = await Promise.all([this.#account.check(email), this.#ip.check(ipKey(ipAddress))]);
    const waits = [account, ip].flatMap((outcome) => (outcome.allowed ? [] : [outcome.retryAfterMs]));
    if (waits.length > 0) throw rateLimited(Math.max(...waits));
  }

  /** Counts a failed login; returns what it locked (the account, the IP, both or nothing). */
  async failed(email: string, ipAddress: string | null): Promise<Lockout[]> {
    const [account, ip] = await Promise.all([this.#account.consume(email), this.#ip.consume(ipKey(ipAddress))]);
    const locked: Lockout[] = [];
    if (account.allowed && account.remaining === 0) {
      // Exponential back-off: the window's length for the first lockout, doubling with each one after it.
      const lockouts = await this.#lockouts.consume(email);
      const count = lockouts.allowed ? LOCKOUT_POINTS - lockouts.remaining : LOCKOUT_POINTS;
      const seconds = Math.min(
        this.#config.loginAccount.durationSeconds * 2 ** Math.min(count - 1, 30),
        this.#config.loginMaxBlockSeconds,
      );
      await this.#account.block(email, seconds);
      locked.push({ scope: 'account', retryAfter: seconds, count });
    }
    if (ip.allowed && ip.remaining === 0) {
      locked.push({ scope: 'ip', retryAfter: this.#config.loginIp.durationSeconds, count: 1 });
    }
    return locked;
  }

  /** The right password: the account's failures (and its back-off) are forgotten; the IP's count stays. */
  async succeeded(email: string): Promise<void> {
    await Promise.all([this.#account.reset(email), this.#lockouts.reset(email)]);
  }
}
