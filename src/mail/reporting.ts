// Every mail that cannot be sent is logged once with its cause (never its recipient or content: the body holds a
// code) and counted, then refused with a MailError that the flow turns into its answer.
import type { Logger } from 'pino';
import { MailError, type Mailer, type MailKind } from './mailer.ts';

/**
 * The cause as it may be logged: message and code (ECONNREFUSED, EAUTH…) and the SMTP reply code, not nodemailer's
 * `command` or `response`, which can quote the conversation.
 */
function loggableCause(error: unknown): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  const { code, responseCode } = error as { code?: unknown; responseCode?: unknown };
  const cause = new Error(error.message);
  cause.name = error.name;
  cause.stack = error.stack;
  return Object.assign(cause, {
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof responseCode === 'number' ? { responseCode } : {}),
  });
}

export function reportFailures(mailer: Mailer, logger: Logger, onFailure: (kind: MailKind) => void): Mailer {
  return {
    async send(message) {
      try {
        await mailer.send(message);
      } catch (error) {
        onFailure(message.kind);
        logger.error({ err: loggableCause(error), mail: { kind: message.kind } }, 'mail could not be sent');
        throw new MailError(message.kind, error);
      }
    },
    close: () => mailer.close(),
  };
}
