// The mails the account flows send, as plain text and HTML; every interpolated value is escaped in the HTML.
// Subjects never carry the code: the development outbox logs them.
import type { MailKind, MailMessage } from './mailer.ts';

export interface MailSettings {
  readonly productName: string;
  /** Base URL of the app that links point to, without a trailing slash. */
  readonly appUrl: string;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (value: string): string => value.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);

interface CodeMail {
  readonly subject: string;
  readonly intro: string;
  readonly action: string;
  readonly link: string;
  readonly ignore: string;
}

function render(kind: MailKind, to: string, settings: MailSettings, code: string, mail: CodeMail): MailMessage {
  const text = [
    mail.intro,
    '',
    `    ${code}`,
    '',
    `The code works once, within 5 minutes. Or open: ${mail.link}`,
    '',
    mail.ignore,
    '',
    `— ${settings.productName}`,
    '',
  ].join('\n');
  const html = `<!doctype html>
<html><body style="font-family: sans-serif; line-height: 1.5">
<p>${escapeHtml(mail.intro)}</p>
<p style="font-size: 24px; font-family: monospace; letter-spacing: 4px"><strong>${escapeHtml(code)}</strong></p>
<p>The code works once, within 5 minutes. Or <a href="${escapeHtml(mail.link)}">${escapeHtml(mail.action)}</a>.</p>
<p style="color: #666">${escapeHtml(mail.ignore)}</p>
<p>— ${escapeHtml(settings.productName)}</p>
</body></html>
`;
  return { kind, to, subject: mail.subject, text, html };
}

/** The mail carrying an email verification code. */
export function verificationMail(to: string, code: string, settings: MailSettings): MailMessage {
  return render('email-verification', to, settings, code, {
    subject: `Verify your ${settings.productName} email address`,
    intro: `Enter this code in ${settings.productName} to confirm that ${to} is your email address:`,
    action: 'verify your email address',
    link: `${settings.appUrl}/verify-email?code=${encodeURIComponent(code)}`,
    ignore: 'If you did not ask for this, you can ignore this mail.',
  });
}

/** The mail carrying a password reset code. */
export function passwordResetMail(to: string, code: string, settings: MailSettings): MailMessage {
  return render('password-reset', to, settings, code, {
    subject: `Reset your ${settings.productName} password`,
    intro: `Someone asked to reset the ${settings.productName} password of ${to}. To choose a new password, enter this code:`,
    action: 'reset your password',
    link: `${settings.appUrl}/reset-password?email=${encodeURIComponent(to)}&code=${encodeURIComponent(code)}`,
    ignore: 'If you did not ask for this, ignore this mail: your password stays as it is.',
  });
}
