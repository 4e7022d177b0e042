// The production Mailer: nodemailer over SMTP (`smtp://` upgrades with STARTTLS when offered, `smtps://` is TLS).
import { createTransport } from 'nodemailer';
import type { Mailer } from './mailer.ts';

/**
 * Creates an SMTP mailer for `url` (credentials in the URL). nodemailer's own logging stays off, so no message
 * body reaches a log; short timeouts keep a dead mail server from holding requests for minutes.
 */
export function createSmtpMailer(url: string, from: string): Mailer {
  const transport = createTransport({
    url,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  });
  return {
    async send(message) {
      await transport.sendMail({
        from,
        to: message.to,
        subject: message.subject,
        text: message.text,
        html: message.html,
      });
    },
    async close() {
      transport.close();
    },
  };
}
