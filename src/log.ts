// The process logger: pino JSON, with every place a secret could sit redacted, and errors serialized without
// the client values or statement text they may carry.
import { GraphQLError } from 'graphql';
import { type Logger, pino } from 'pino';
import { build as pretty } from 'pino-pretty';
import type { Config } from './config.ts';
import { censor, errorCodeOf, withoutValues } from './redact.ts';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  // The refresh cookie of browser sessions, on its way in and out.
  '*.headers.cookie',
  'res.headers["set-cookie"]',
  'headers["set-cookie"]',
  '*.headers["set-cookie"]',
  'password',
  'newPassword',
  'currentPassword',
  'refreshToken',
  'accessToken',
  'token',
  'secret',
  '*.password',
  '*.newPassword',
  '*.currentPassword',
  '*.refreshToken',
  '*.accessToken',
  '*.token',
  '*.code',
  '*.secret',
  'variables',
  '*.variables',
  'params',
  '*.params',
  'query',
  '*.query',
  'connectionParams',
  '*.connectionParams',
];

/** Properties of driver and GraphQL errors that hold statement text, bound values or the request's document. */
const ERROR_PAYLOAD = new Set(['sql', 'parameters', 'params', 'values', 'query', 'variables', 'source', 'nodes']);

type SerializedError = ReturnType<typeof pino.stdSerializers.err>;

/**
 * pino's error serializer, then: a GraphQL request error keeps only its message without the values it quotes
 * (never its document), and no error keeps the statement or values a driver attached to it.
 */
export function serializeError(error: unknown, depth = 0): SerializedError | unknown {
  if (!(error instanceof Error)) return error;
  const serialized = pino.stdSerializers.err(error) as SerializedError & Record<string, unknown>;
  for (const key of Object.keys(serialized)) if (ERROR_PAYLOAD.has(key)) delete serialized[key];
  if ('code' in serialized) serialized.code = errorCodeOf(serialized.code);
  if (error instanceof GraphQLError) {
    const message = withoutValues(error.message);
    serialized.message = message;
    const frames = (error.stack ?? '').split('\n').filter((line) => line.startsWith('    at '));
    serialized.stack = [`${error.name}: ${message}`, ...frames].join('\n');
    delete serialized.locations;
  }
  if (error.cause !== undefined && depth < 3)
    (serialized as Record<string, unknown>).cause = serializeError(error.cause, depth + 1);
  return serialized;
}

/**
 * Yoga's logger: its messages are fixed texts and errors; an error goes through serializeError, never String().
 * `current` is the logger to write to (the request's); `base` is the one whose level decides (the process's).
 */
export function yogaLogging(
  current: () => Logger,
  skip: (error: unknown) => boolean = () => false,
  base: Logger = current(),
) {
  const write =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (...args: unknown[]) => {
      // Yoga writes debug lines on every request: below the level, nothing is built (not even the request's logger).
      if (!base.isLevelEnabled(level)) return;
      const logger = current();
      const errors = args.filter((arg) => arg instanceof Error);
      if (errors.length > 0 && errors.every(skip)) return;
      const text = args
        .filter((arg) => !(arg instanceof Error))
        .map((arg) => (typeof arg === 'string' ? withoutValues(arg) : '[value]'))
        .join(' ');
      if (errors.length > 0) logger[level]({ err: errors[0] }, text || 'error');
      else logger[level](text);
    };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

/**
 * The process logger: JSON lines (production, tests, log shippers), or pino-pretty's readable lines in
 * development. Redaction happens before either, so both hold the same (no) secrets.
 */
export function createLogger(
  config: Pick<Config, 'logLevel'> & Partial<Pick<Config, 'env'>>,
  destination?: NodeJS.WritableStream,
): Logger {
  const options = {
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor },
    serializers: { err: serializeError },
  };
  if (destination) return pino(options, destination as never);
  if (config.env === 'development') {
    // In this thread and synchronous: no worker to lose lines when the process exits.
    return pino(
      options,
      pretty({ sync: true, colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l' }),
    );
  }
  return pino(options);
}
