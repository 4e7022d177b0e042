// What the account flows need from mail: send one message. SMTP in production, files in development.

/** What a mail is for: named in logs and metrics instead of its recipient or content. */
export type MailKind = 'email-verification' | 'password-reset';

export interface MailMessage {
  readonly kind: MailKind;
  readonly to: string;
  readonly subject: string;
  readonly text: string;
  readonly html: string;
}

export interface Mailer {
  /** Resolves once the message is handed over (to the SMTP server, or to the outbox file). */
  send(message: MailMessage): Promise<void>;
  close(): Promise<void>;
}

/** A mail that was not handed over (SMTP refused, timed out or unreachable); already logged and counted. */
export class MailError extends Error {
  override name = 'MailError';
  readonly kind: MailKind;

  constructor(kind: MailKind, cause: unknown) {
    super(`the ${kind} mail could not be sent`, { cause });
    this.kind = kind;
  }
}
