// A database or Redis that cannot be reached at start, named by the variable an operator fixes
// (`DATABASE_URL: cannot connect: <cause>`), the cause stripped of any credential it could quote.

export class CannotConnectError extends Error {
  override name = 'CannotConnectError';
  /** The variable whose server could not be reached: DATABASE_URL, REDIS_URL or REDIS_SENTINELS. */
  readonly variable: string;

  constructor(variable: string, cause: string) {
    super(`${variable}: cannot connect: ${cause}`);
    this.variable = variable;
  }
}

/** A driver error's own words: its code (ECONNREFUSED, ER_ACCESS_DENIED_ERROR) and message, or its first cause's. */
function causeOf(error: unknown, depth = 0): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  // Node's connection attempts to several addresses fail as an AggregateError with an empty message.
  let message = error.message;
  if (!message && error instanceof AggregateError && error.errors.length > 0 && depth < 3) {
    return causeOf(error.errors[0], depth + 1);
  }
  if (!message && error.cause !== undefined && depth < 3) return causeOf(error.cause, depth + 1);
  message ||= error.name;
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}

/**
 * The error to end the start with. `secrets` (the passwords of the URLs) are cut from the cause wherever it
 * quotes them, and so is the user-info part of any URL in it.
 */
export function cannotConnect(variable: string, error: unknown, secrets: readonly string[] = []): CannotConnectError {
  let cause = causeOf(error).replace(/\/\/[^/@\s]*@/g, '//');
  for (const secret of secrets) if (secret) cause = cause.split(secret).join('[redacted]');
  return new CannotConnectError(variable, cause.split('\n')[0]?.slice(0, 300) ?? '');
}

/** The password in a URL (decoded), for cannotConnect's `secrets`; empty when there is none. */
export function passwordOf(url: string | undefined): string[] {
  if (!url || !URL.canParse(url)) return [];
  const { password } = new URL(url);
  if (!password) return [];
  try {
    return [password, decodeURIComponent(password)];
  } catch {
    return [password];
  }
}
