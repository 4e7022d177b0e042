// The app's named throttles (RATE_LIMIT_*), built once in createApp. Checks of a secret go through
// attempts.ts (reserve, compare, settle); the login throttle is in login-throttle.ts.
import type { Config } from '../config.ts';
import { GuessLimit } from './attempts.ts';
import { type Limiter, type LimiterFactory, rateLimited } from './limiters.ts';
import { LoginThrottle } from './login-throttle.ts';

export interface RateLimits {
  readonly login: LoginThrottle;
  /** Registrations per client IP. */
  readonly register: Limiter;
  /** Refreshes per session. */
  readonly refresh: Limiter;
  /** startOAuth calls per client IP. */
  readonly oauthStart: Limiter;
  /** startPasskeyLogin calls per client IP (RATE_LIMIT_PASSKEY_START_IP). */
  readonly passkeyStart: Limiter;
  /** Requests for an email verification code, per account (CODE_REQUEST_LIMIT per CODE_REQUEST_WINDOW). */
  readonly verification: Limiter;
  /** Requests for a password reset code, per email address (the same limit). */
  readonly reset: Limiter;
  /** Guesses of verification and reset codes, per email address (RATE_LIMIT_CODE_ATTEMPTS). */
  readonly codeAttempts: GuessLimit;
  /** Client-credentials tokens per authenticated client (RATE_LIMIT_CLIENT_TOKEN). */
  readonly clientToken: Limiter;
  /** Token-endpoint requests per client IP, whatever their outcome (RATE_LIMIT_CLIENT_TOKEN_IP). */
  readonly clientTokenIp: Limiter;
}

/** Clients without a known address share one bucket rather than escaping the limit. */
export const ipKey = (ipAddress: string | null): string => {
  if (ipAddress === null) return 'unknown';
  if (!ipAddress.includes(':')) return ipAddress;
  // IPv6: one subscriber is routed a whole /64 and can pick any address in it, so the /64 is the client.
  const [head = '', tail] = (ipAddress.split('%')[0] as string).toLowerCase().split('::');
  const groups = head ? head.split(':') : [];
  if (tail !== undefined) {
    const right = tail ? tail.split(':') : [];
    const width = right.reduce((n, group) => n + (group.includes('.') ? 2 : 1), 0);
    groups.push(...Array<string>(Math.max(0, 8 - groups.length - width)).fill('0'), ...right);
  }
  return `${groups
    .slice(0, 4)
    .map((group) => Number.parseInt(group, 16).toString(16))
    .join(':')}::/64`;
};

export function createRateLimits(
  config: Pick<Config, 'rateLimits' | 'codeRequests'>,
  limiters: LimiterFactory,
): RateLimits {
  const { rateLimits } = config;
  const codeRequests = {
    points: config.codeRequests.limit,
    durationSeconds: Math.max(1, Math.round(config.codeRequests.windowMs / 1000)),
  };
  return {
    login: new LoginThrottle(rateLimits, limiters, ipKey),
    register: limiters('register-ip', rateLimits.registerIp),
    refresh: limiters('refresh-session', rateLimits.refreshSession),
    oauthStart: limiters('oauth-start-ip', rateLimits.oauthStartIp),
    passkeyStart: limiters('passkey-start-ip', rateLimits.passkeyStartIp),
    verification: limiters('email-verification', codeRequests),
    reset: limiters('password-reset', codeRequests),
    codeAttempts: new GuessLimit(limiters('code-attempts', rateLimits.codeAttempts)),
    clientToken: limiters('client-token', rateLimits.clientToken),
    clientTokenIp: limiters('client-token-ip', rateLimits.clientTokenIp),
  };
}

/** Counts one action for `key`; RATE_LIMITED (with retryAfter) once over the limit. */
export async function enforce(limiter: Limiter, key: string): Promise<void> {
  const outcome = await limiter.consume(key);
  if (!outcome.allowed) throw rateLimited(outcome.retryAfterMs);
}
