// What the account flows need of the app's services (createApp builds them; every flow takes the same object).
import type { Logger } from 'pino';
import type { PasswordHasher } from '../auth/passwords.ts';
import type { Clock } from '../clock.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import type { Mailer } from '../mail/mailer.ts';
import type { MailSettings } from '../mail/templates.ts';
import type { Sessions } from '../sessions/sessions.ts';
import type { OneTimeCodes } from './codes.ts';

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
  readonly limits: Pick<RateLimits, 'verification' | 'reset' | 'codeAttempts' | 'login'>;
  /** For failures of mail sent after the response (password reset); never given a code. */
  readonly logger: Logger;
}
