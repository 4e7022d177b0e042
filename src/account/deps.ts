// What the account flows are built from; createApp wires one of these.
import type { Logger } from 'pino';
import type { PasswordHasher } from '../auth/passwords.ts';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import { GuessLimit } from '../limits/attempts.ts';
import type { Limiter, LimiterFactory } from '../limits/limiters.ts';
import type { LoginThrottle } from '../limits/login-throttle.ts';
import type { Mailer } from '../mail/mailer.ts';
import type { MailSettings } from '../mail/templates.ts';
import type { Sessions } from '../sessions/sessions.ts';
import type { KeyValueStore } from '../store/store.ts';
import { OneTimeCodes } from './codes.ts';

export interface AccountDeps {
  readonly clock: Clock;
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  readonly codes: OneTimeCodes;
  readonly mailer: Mailer;
  readonly mail: MailSettings;
  /**
   * Per account: code requests for email verification (by user id) and password reset (by email); wrong codes
   * of either kind (by email, whether or not an account has it); and the failed-sign-in limit of login, which
   * deleteAccount's password check shares and proving an email clears.
   */
  readonly limits: {
    readonly verification: Limiter;
    readonly reset: Limiter;
    readonly attempts: GuessLimit;
    readonly login: LoginThrottle;
  };
  /** For failures of mail sent after the response (password reset); never given a code. */
  readonly logger: Logger;
}

export interface AccountParts {
  readonly clock: Clock;
  readonly hasher: PasswordHasher;
  readonly sessions: Sessions;
  readonly store: KeyValueStore;
  readonly mailer: Mailer;
  readonly limiters: LimiterFactory;
  /** The app's own login throttle: its counters must be the very ones login uses (in memory, one instance). */
  readonly limits: { readonly login: LoginThrottle };
  readonly logger: Logger;
}

/** Builds the account flows' dependencies from the app's parts and its configuration. */
export function createAccountDeps(
  config: Pick<Config, 'mail' | 'codeRequests' | 'rateLimits'>,
  parts: AccountParts,
): AccountDeps {
  const perWindow = {
    points: config.codeRequests.limit,
    durationSeconds: Math.max(1, Math.round(config.codeRequests.windowMs / 1000)),
  };
  return {
    clock: parts.clock,
    hasher: parts.hasher,
    sessions: parts.sessions,
    codes: new OneTimeCodes(parts.store, parts.clock),
    mailer: parts.mailer,
    mail: { productName: config.mail.productName, appUrl: config.mail.appUrl },
    limits: {
      verification: parts.limiters('email-verification', perWindow),
      reset: parts.limiters('password-reset', perWindow),
      attempts: new GuessLimit(parts.limiters('code-attempts', config.rateLimits.codeAttempts)),
      login: parts.limits.login,
    },
    logger: parts.logger,
  };
}
