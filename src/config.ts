// Reads the environment once, validates it and returns a frozen Config: the only reader of process.env.
import { z } from 'zod';

export const JWT_ALGORITHMS = ['EdDSA', 'ES256', 'RS256', 'HS256'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export type DatabaseConfig =
  | { dialect: 'sqlite'; path: string }
  | { dialect: 'mysql'; url: string; host: string; port: number; user: string; password: string; dbName: string };

export interface Config {
  readonly env: 'development' | 'production' | 'test';
  readonly port: number;
  readonly host: string;
  readonly publicUrl: string;
  readonly database: DatabaseConfig;
  /** Unset: rate limits, codes, OAuth state and revocation fan-out stay in this process. */
  readonly redisUrl: string | undefined;
  readonly dataDir: string;
  readonly issuer: string;
  readonly audience: string;
  readonly jwt: {
    readonly alg: JwtAlgorithm;
    /** PEM (PKCS#8) for asymmetric algorithms, the secret for HS256; undefined means "generate a development key". */
    readonly privateKey: string | undefined;
    /** PEM blocks (public or private) of keys retired from signing but still accepted and published. */
    readonly previousKeys: string | undefined;
    readonly clockToleranceMs: number;
  };
  readonly accessTokenTtlMs: number;
  readonly refreshTokenTtlMs: number;
  readonly sessionMaxAgeMs: number;
  readonly refreshReuseGraceMs: number;
  readonly bcryptCost: number;
  readonly corsOrigins: readonly string[];
  readonly trustProxy: boolean;
  readonly graphiql: boolean;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `90s`, `15m`, `12h`, `30d` or `250ms` into milliseconds. */
export function parseDuration(value: string): number | undefined {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(value.trim());
  if (!match) return undefined;
  return Number(match[1]) * (UNITS[match[2] as string] as number);
}

const duration = (fallback: string, min = 1) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === undefined || ms < min) {
        ctx.addIssue({ code: 'custom', message: `expected a duration like 90s, 15m, 12h or 30d, got "${value}"` });
        return z.NEVER;
      }
      return ms;
    });

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const list = z
  .string()
  .default('')
  .transform((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  HOST: z.string().default('0.0.0.0'),
  PUBLIC_URL: optionalText,
  DATA_DIR: z.string().default('./data'),
  DATABASE_URL: optionalText,
  REDIS_URL: z
    .string()
    .optional()
    .refine(
      (v) => v === undefined || /^rediss?:\/\//.test(v),
      'expected redis://[user:pass@]host:port[/db] or rediss://…',
    ),
  ISSUER: optionalText,
  AUDIENCE: optionalText,
  JWT_ALG: z.enum(JWT_ALGORITHMS, { message: `expected one of ${JWT_ALGORITHMS.join(', ')}` }).default('EdDSA'),
  JWT_PRIVATE_KEY: optionalText,
  JWT_PRIVATE_KEY_FILE: optionalText,
  JWT_PREVIOUS_KEYS: optionalText,
  JWT_PREVIOUS_KEYS_FILE: optionalText,
  JWT_CLOCK_TOLERANCE: duration('5s', 0),
  ACCESS_TOKEN_TTL: duration('15m'),
  REFRESH_TOKEN_TTL: duration('30d'),
  SESSION_MAX_AGE: duration('90d'),
  REFRESH_REUSE_GRACE: duration('10s'),
  BCRYPT_COST: z.coerce.number().int().min(4, 'expected an integer from 4 to 31').max(31).default(12),
  CORS_ORIGINS: list,
  TRUST_PROXY: bool.default(false),
  GRAPHIQL: bool.optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Env = Record<string, string | undefined>;
export type ReadFile = (path: string) => string;

function parseDatabaseUrl(url: string | undefined, dataDir: string): DatabaseConfig {
  if (url === undefined) return { dialect: 'sqlite', path: `${dataDir}/auth.sqlite` };
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw new ConfigError('DATABASE_URL: expected sqlite:<path> with a file path');
    return { dialect: 'sqlite', path };
  }
  if (url.startsWith('mysql://') || url.startsWith('mariadb://')) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError('DATABASE_URL: expected mysql://user:pass@host:port/db');
    }
    const dbName = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
    if (!dbName || !parsed.hostname) throw new ConfigError('DATABASE_URL: expected mysql://user:pass@host:port/db');
    return {
      dialect: 'mysql',
      url,
      host: parsed.hostname,
      port: parsed.port ? Number(parsed.port) : 3306,
      user: decodeURIComponent(parsed.username),
      password: decodeURIComponent(parsed.password),
      dbName,
    };
  }
  throw new ConfigError('DATABASE_URL: expected sqlite:<path> or mysql://user:pass@host:port/db');
}

function readKey(inline: string | undefined, file: string | undefined, name: string, readFile: ReadFile) {
  if (inline !== undefined && file !== undefined) {
    throw new ConfigError(`${name}: set either ${name} or ${name}_FILE, not both`);
  }
  if (file === undefined) return inline?.replace(/\\n/g, '\n');
  try {
    return readFile(file);
  } catch {
    throw new ConfigError(`${name}_FILE: cannot read the file "${file}"`);
  }
}

/** Builds the Config from an environment; throws ConfigError with one line naming the variable at fault. */
export function loadConfig(env: Env, readFile: ReadFile): Config {
  // A variable set to nothing (PORT=) means "use the default", not "the empty value".
  const set = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ''));
  const result = schema.safeParse(set);
  if (!result.success) {
    const issue = result.error.issues[0];
    const name = String(issue?.path[0] ?? 'environment');
    throw new ConfigError(`${name}: ${issue?.message ?? 'invalid value'}`);
  }
  const e = result.data;
  const production = e.NODE_ENV === 'production';
  const publicUrl = (e.PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/$/, '');
  const privateKey = readKey(e.JWT_PRIVATE_KEY, e.JWT_PRIVATE_KEY_FILE, 'JWT_PRIVATE_KEY', readFile);
  if (privateKey === undefined && production) {
    throw new ConfigError(
      'JWT_PRIVATE_KEY: required when NODE_ENV=production (a PKCS#8 PEM, or for HS256 a secret of 32+ bytes)',
    );
  }
  // Counted as the key store uses it: trimmed (a secret file usually ends with a newline).
  if (privateKey !== undefined && e.JWT_ALG === 'HS256' && Buffer.byteLength(privateKey.trim()) < 32) {
    throw new ConfigError('JWT_PRIVATE_KEY: the HS256 secret must be at least 32 bytes');
  }
  if (e.ACCESS_TOKEN_TTL > e.REFRESH_TOKEN_TTL) {
    throw new ConfigError('ACCESS_TOKEN_TTL: must not be longer than REFRESH_TOKEN_TTL');
  }
  if (e.REFRESH_TOKEN_TTL > e.SESSION_MAX_AGE) {
    throw new ConfigError('REFRESH_TOKEN_TTL: must not be longer than SESSION_MAX_AGE');
  }
  return Object.freeze({
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    publicUrl,
    database: parseDatabaseUrl(e.DATABASE_URL, e.DATA_DIR),
    redisUrl: e.REDIS_URL,
    dataDir: e.DATA_DIR,
    issuer: e.ISSUER ?? publicUrl,
    audience: e.AUDIENCE ?? publicUrl,
    jwt: Object.freeze({
      alg: e.JWT_ALG,
      privateKey,
      previousKeys: readKey(e.JWT_PREVIOUS_KEYS, e.JWT_PREVIOUS_KEYS_FILE, 'JWT_PREVIOUS_KEYS', readFile),
      clockToleranceMs: e.JWT_CLOCK_TOLERANCE,
    }),
    accessTokenTtlMs: e.ACCESS_TOKEN_TTL,
    refreshTokenTtlMs: e.REFRESH_TOKEN_TTL,
    sessionMaxAgeMs: e.SESSION_MAX_AGE,
    refreshReuseGraceMs: e.REFRESH_REUSE_GRACE,
    bcryptCost: e.BCRYPT_COST,
    corsOrigins: Object.freeze(e.CORS_ORIGINS),
    trustProxy: e.TRUST_PROXY,
    graphiql: e.GRAPHIQL ?? !production,
    logLevel: e.LOG_LEVEL,
  });
}
