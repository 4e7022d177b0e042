// Picks the Mailer for the configuration: SMTP when SMTP_URL is set, the development outbox otherwise
// (config.ts refuses a production start without SMTP_URL).
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Mailer, MailKind } from './mailer.ts';
import { createOutboxMailer } from './outbox.ts';
import { reportFailures } from './reporting.ts';
import { createSmtpMailer } from './smtp.ts';

/** `onFailure` is told the kind of each mail that could not be sent (metrics); the failure is logged here. */
export function createMailer(
  config: Pick<Config, 'mail' | 'dataDir'>,
  logger: Logger,
  onFailure: (kind: MailKind) => void = () => {},
): Mailer {
  if (config.mail.smtpUrl) {
    return reportFailures(createSmtpMailer(config.mail.smtpUrl, config.mail.from), logger, onFailure);
  }
  logger.warn(
    { outbox: `${config.dataDir}/mail` },
    'SMTP_URL is not set: mail is written to the development outbox instead of being sent',
  );
  return reportFailures(createOutboxMailer(config.dataDir, config.mail.from, logger), logger, onFailure);
}
