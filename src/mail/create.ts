// Picks the Mailer for the configuration: SMTP when SMTP_URL is set, the development outbox otherwise
// (config.ts refuses a production start without SMTP_URL).
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Mailer } from './mailer.ts';
import { createOutboxMailer } from './outbox.ts';
import { createSmtpMailer } from './smtp.ts';

export function createMailer(config: Pick<Config, 'mail' | 'dataDir'>, logger: Logger): Mailer {
  if (config.mail.smtpUrl) return createSmtpMailer(config.mail.smtpUrl, config.mail.from);
  logger.warn(
    { outbox: `${config.dataDir}/mail` },
    'SMTP_URL is not set: mail is written to the development outbox instead of being sent',
  );
  return createOutboxMailer(config.dataDir, config.mail.from, logger);
}
