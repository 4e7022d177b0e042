// What the account flows need from mail: send one message. SMTP in production, files in development.

export interface MailMessage {
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
