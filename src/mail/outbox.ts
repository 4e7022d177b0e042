// The development Mailer: without SMTP_URL each message is written as an .eml file under `${dataDir}/mail/`,
// and the log names the file, recipient and subject only (codes are never logged, in any mode).
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import nodemailer from 'nodemailer';
import type { Logger } from 'pino';
import { ensurePrivateDirAsync, PRIVATE_FILE_MODE } from '../private-files.ts';
import type { Mailer } from './mailer.ts';

export function createOutboxMailer(dataDir: string, from: string, logger: Logger): Mailer {
  const dir = resolve(dataDir, 'mail');
  // Renders the full RFC 5322 message (both bodies) without sending it anywhere.
  const render = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  return {
    async send(message) {
      const info = await render.sendMail({
        from,
        to: message.to,
        subject: message.subject,
        text: message.text,
        html: message.html,
      });
      await ensurePrivateDirAsync(dir);
      const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}.eml`);
      await writeFile(file, info.message as Buffer, { mode: PRIVATE_FILE_MODE });
      logger.warn(
        { mail: { file, to: message.to, subject: message.subject } },
        'SMTP_URL is not set: mail NOT sent, written to the development outbox instead',
      );
    },
    async close() {},
  };
}
