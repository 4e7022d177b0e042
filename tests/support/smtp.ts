// A throwaway SMTP server on 127.0.0.1 that keeps every message it receives, parsed, in memory.
import { type AddressObject, type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface CapturedMail {
  readonly to: string[];
  readonly from: string | undefined;
  readonly subject: string;
  readonly text: string;
  readonly html: string;
  readonly parsed: ParsedMail;
}

export interface SmtpCapture {
  /** `smtp://127.0.0.1:<port>`, for SMTP_URL. */
  readonly url: string;
  readonly messages: CapturedMail[];
  /** Resolves with the next message to `to` not yet returned (waiting for it up to `timeoutMs`). */
  waitForMail(to: string, timeoutMs?: number): Promise<CapturedMail>;
  /** The messages to `to` received so far. */
  mailTo(to: string): CapturedMail[];
  /**
   * Keeps each new connection waiting for the server's greeting (a mail server that does not answer) until the
   * function returned is called; those waiting are greeted then.
   */
  holdGreetings(): () => void;
  /** How many connections wait for their greeting now. */
  waitingForGreeting(): number;
  close(): Promise<void>;
}

const addresses = (field: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(field) ? field : field ? [field] : []).flatMap((a) =>
    a.value.map((v) => (v.address ?? '').toLowerCase()),
  );

export async function startSmtpServer(): Promise<SmtpCapture> {
  const messages: CapturedMail[] = [];
  const seen = new Set<CapturedMail>();
  const waiters = new Set<() => void>();
  // While greetings are held, the connections waiting for theirs.
  let held: (() => void)[] | undefined;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onConnect(_session, callback) {
      if (held) held.push(() => callback());
      else callback();
    },
    onData(stream, _session, callback) {
      simpleParser(stream).then(
        (parsed) => {
          messages.push({
            to: addresses(parsed.to),
            from: parsed.from?.value[0]?.address,
            subject: parsed.subject ?? '',
            text: parsed.text ?? '',
            html: typeof parsed.html === 'string' ? parsed.html : '',
            parsed,
          });
          for (const wake of waiters) wake();
          callback();
        },
        (error: Error) => callback(error),
      );
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const mailTo = (to: string) => messages.filter((m) => m.to.includes(to.toLowerCase()));
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    mailTo,
    holdGreetings() {
      const waiting: (() => void)[] = [];
      held = waiting;
      return () => {
        if (held === waiting) held = undefined;
        for (const greet of waiting.splice(0)) greet();
      };
    },
    waitingForGreeting: () => held?.length ?? 0,
    waitForMail(to, timeoutMs = 5_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const next = mailTo(to).find((m) => !seen.has(m));
          if (!next) return false;
          seen.add(next);
          cleanup();
          resolve(next);
          return true;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no mail to ${to} within ${timeoutMs} ms`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(wake);
        };
        const wake = () => void check();
        if (!check()) waiters.add(wake);
      });
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The code in a verification or reset mail's text body: the indented line of 6 characters from the code alphabet. */
export function mailedCode(mail: CapturedMail): string {
  const match = /^ {4}([A-HJ-NP-Z2-9]{6})$/m.exec(mail.text);
  if (!match?.[1]) throw new Error('no code in the mail');
  return match[1];
}
