// Reads the environment once, validates it and returns a frozen Config: the only reader of process.env.
import { z } from 'zod';

export const JWT_ALGORITHMS = ['EdDSA', 'ES256', 'RS256', 'HS256'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export type DatabaseConfig =
  | { dialect: 'sqlite'; path: string }
  | { dialect: 'mysql'; url: string; host: string; port: number; user: string; password: string; dbName: string };

export interface RedisSentinelConfig {
  readonly sentinels: readonly { readonly host: string; readonly port: number }[];
  /** The master's name as the sentinels know it. */
  readonly name: string;
  /** AUTH for the master and replicas (REDIS_PASSWORD). */
  readonly password: string | undefined;
  /** AUTH for the sentinels themselves (REDIS_SENTINEL_PASSWORD). */
  readonly sentinelPassword: string | undefined;
}

export interface Config {
  readonly env: 'development' | 'production' | 'test';
  readonly port: number;
  readonly host: string;
  readonly publicUrl: string;
  readonly database: DatabaseConfig;
  /** Unset: rate limits, codes, OAuth state and revocation fan-out stay in this process. */
  readonly redisUrl: string | undefined;
  /** Redis through Sentinel (REDIS_SENTINELS, REDIS_SENTINEL_NAME): set instead of redisUrl, never with it. */
  readonly redisSentinel: RedisSentinelConfig | undefined;
  readonly dataDir: string;
  /**
   * The 32-byte key that encrypts TOTP secrets and keys recovery-code hashes (MFA_ENCRYPTION_KEY or
   * MFA_ENCRYPTION_KEY_FILE). Without it,
   * src/mfa/key.ts keeps a generated one under dataDir outside production, and refuses every use in production.
   */
  readonly mfaEncryptionKey: Buffer | undefined;
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
  /** Users' rows each instance keeps in memory for `me` and federation reads (USER_CACHE_SIZE; 0: none). */
  readonly userCacheSize: number;
  readonly corsOrigins: readonly string[];
  /** The refresh cookie of cookie-bound (browser) sessions. */
  readonly refreshCookie: RefreshCookieConfig;
  /** How many proxies in front of us append to X-Forwarded-For (0: ignore the header). */
  readonly trustProxy: number;
  readonly graphiql: boolean;
  /** When set, GET /metrics requires `Authorization: Bearer <metricsToken>`. */
  readonly metricsToken: string | undefined;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly mail: MailConfig;
  /** Per-account throttle of verification and reset code requests. */
  readonly codeRequests: { readonly limit: number; readonly windowMs: number };
  readonly oauth: OAuthConfig;
  /** Throttles of the credential-checking operations (RATE_LIMIT_*). */
  readonly rateLimits: RateLimitsConfig;
  /** Introspection queries are refused when false (default: off in production). */
  readonly introspection: boolean;
  /**
   * Who may read the subgraph SDL (`_service { sdl }`): anyone ('public', the default outside production), or
   * only tokens with scope users:read or sessions:feed ('scoped', the default in production).
   */
  readonly federationSdl: 'public' | 'scoped';
  /** Per-document limits enforced before execution (graphql-armor). */
  readonly graphqlLimits: GraphQLLimitsConfig;
  readonly webSocket: WebSocketLimitsConfig;
  /** OpenTelemetry tracing (OTEL_EXPORTER_OTLP_ENDPOINT); undefined: off, nothing started. */
  readonly telemetry: TelemetryConfig | undefined;
  /** The WebAuthn relying party that passkeys belong to. */
  readonly webauthn: WebAuthnConfig;
}

export interface WebAuthnConfig {
  /** WEBAUTHN_RP_ID: the domain passkeys are bound to (default: PUBLIC_URL's hostname). */
  readonly rpId: string;
  /** WEBAUTHN_RP_NAME: shown by the authenticator at registration (default: PRODUCT_NAME). */
  readonly rpName: string;
  /** WEBAUTHN_ORIGINS: the exact origins a passkey response may come from (default: PUBLIC_URL's origin). */
  readonly origins: readonly string[];
}

export interface RefreshCookieConfig {
  /** REFRESH_COOKIE_NAME (refresh_token). */
  readonly name: string;
  /** REFRESH_COOKIE_DOMAIN; unset: the API's host only. */
  readonly domain: string | undefined;
  /** REFRESH_COOKIE_SAMESITE (Strict). */
  readonly sameSite: 'Strict' | 'Lax';
  /** Left out only for an http://localhost or http://127.0.0.1 PUBLIC_URL outside production. */
  readonly secure: boolean;
}

export interface TelemetryConfig {
  /** The OTLP/HTTP base URL (no trailing slash); spans go to `${endpoint}/v1/traces`. */
  readonly endpoint: string;
  readonly serviceName: string;
}

export interface WebSocketLimitsConfig {
  /** Operations one socket may have running at once. */
  readonly maxOperations: number;
  /** Largest message accepted; a bigger one closes the socket with 1009. */
  readonly maxMessageBytes: number;
  /** How long a socket may stay open without connection_init (closed with 4408). */
  readonly connectionInitTimeoutMs: number;
}

/** `points` actions per `durationSeconds` window. */
export interface RateLimit {
  readonly points: number;
  readonly durationSeconds: number;
}

export interface RateLimitsConfig {
  /** Failed logins per account (normalised email); past it the account is blocked, each time twice as long. */
  readonly loginAccount: RateLimit;
  /** Failed logins per client IP. */
  readonly loginIp: RateLimit;
  /** Longest per-account login block the exponential back-off reaches. */
  readonly loginMaxBlockSeconds: number;
  readonly registerIp: RateLimit;
  readonly refreshSession: RateLimit;
  /** Wrong verification or reset codes per account. */
  readonly codeAttempts: RateLimit;
  /**
   * Wrong second factors per account (RATE_LIMIT_MFA_ATTEMPTS), besides the failed sign-ins they also count as:
   * the right password forgets those, never these, so knowing the password buys no more guesses at the code.
   */
  readonly mfaAttempts: RateLimit;
  readonly oauthStartIp: RateLimit;
  /** startPasskeyLogin calls per client IP (RATE_LIMIT_PASSKEY_START_IP): each one stores a challenge. */
  readonly passkeyStartIp: RateLimit;
  /**
   * Client-credentials tokens per client (RATE_LIMIT_CLIENT_TOKEN), counted only once the client has authenticated:
   * wrong secrets sent with a client's id never lock the real client out.
   */
  readonly clientToken: RateLimit;
  /** Token-endpoint requests per client IP (RATE_LIMIT_CLIENT_TOKEN_IP), every one counted, failures included. */
  readonly clientTokenIp: RateLimit;
}

export interface GraphQLLimitsConfig {
  readonly maxDepth: number;
  readonly maxAliases: number;
  readonly maxDirectives: number;
  readonly maxTokens: number;
  readonly maxCost: number;
}

export interface OAuthConfig {
  /** The exact redirect URIs startOAuth accepts. */
  readonly redirectUris: readonly string[];
  /** Limit of each call to a provider (discovery, token, user info). */
  readonly timeoutMs: number;
  readonly providers: readonly OAuthProviderConfig[];
}

export type OAuthProviderConfig =
  | {
      readonly kind: 'github';
      readonly id: 'github';
      readonly name: string;
      readonly clientId: string;
      readonly clientSecret: string;
      readonly authorizeUrl: string;
      readonly tokenUrl: string;
      /** Base URL of the REST API (no trailing slash). */
      readonly apiUrl: string;
    }
  | {
      readonly kind: 'oidc';
      readonly id: string;
      readonly name: string;
      /** Discovery starts from `${issuer}/.well-known/openid-configuration`. */
      readonly issuer: string;
      readonly clientId: string;
      readonly clientSecret: string;
    };

export interface MailConfig {
  /** `smtp://` or `smtps://` URL; undefined (development only) writes mail to `${dataDir}/mail/` instead. */
  readonly smtpUrl: string | undefined;
  readonly from: string;
  /** Named in the subject and body of every mail. */
  readonly productName: string;
  /** Base URL of the app that links in mail point to (no trailing slash). */
  readonly appUrl: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  /** Every problem found, one line each, starting with the variable at fault; never a variable's value. */
  readonly problems: readonly string[];

  constructor(problems: string | readonly string[]) {
    const list = typeof problems === 'string' ? [problems] : [...problems];
    super(list.join('\n'));
    this.problems = Object.freeze(list);
  }
}

/** The lines a process prints for a ConfigError: one per problem, so an operator fixes them all in one go. */
export const configErrorLines = (error: ConfigError): string =>
  error.problems.map((problem) => `configuration error: ${problem}`).join('\n');

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

/** `N/duration`, e.g. `5/15m`: at most N actions per window of that duration (a whole number of seconds). */
const rate = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx): RateLimit => {
      const match = /^(\d+)\/(.+)$/.exec(value.trim());
      const ms = match ? parseDuration(match[2] as string) : undefined;
      const points = Number(match?.[1]);
      if (ms === undefined || ms < 1000 || ms % 1000 !== 0 || !Number.isSafeInteger(points) || points < 1) {
        ctx.addIssue({ code: 'custom', message: `expected N/duration like 5/15m or 100/1h, got "${value}"` });
        return z.NEVER;
      }
      return { points, durationSeconds: ms / 1000 };
    });

const positiveInt = (fallback: number) =>
  z.coerce.number().int().min(1, 'expected a positive integer').default(fallback);

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** false/true or the number of trusted proxies (true means 1, false 0). */
const proxyHops = z
  .string()
  .trim()
  .transform((value, ctx) => {
    if (/^(false|0|no)$/.test(value)) return 0;
    if (/^(true|yes)$/.test(value)) return 1;
    const hops = /^[1-9]\d{0,1}$/.test(value) ? Number(value) : Number.NaN;
    if (Number.isNaN(hops)) {
      ctx.addIssue({
        code: 'custom',
        message: `expected true or false, or the number of trusted proxies (1-99), got "${value}"`,
      });
      return z.NEVER;
    }
    return hops;
  });

const list = z
  .string()
  .default('')
  .transform((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

const DOMAIN_NAME = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

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
      (v) => v === undefined || (/^rediss?:\/\//.test(v) && decodableUrl(v)),
      'expected redis://[user:pass@]host:port[/db] or rediss://…',
    ),
  REDIS_SENTINELS: list.transform((entries, ctx) => {
    const sentinels: { host: string; port: number }[] = [];
    for (const entry of entries) {
      const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(entry);
      const port = Number(match?.[2]);
      if (!match || port < 1 || port > 65535) {
        ctx.addIssue({ code: 'custom', message: `expected host:port,host:port,…, got "${entry}"` });
        return z.NEVER;
      }
      sentinels.push({ host: (match[1] as string).replace(/^\[(.*)\]$/, '$1'), port });
    }
    return sentinels;
  }),
  REDIS_SENTINEL_NAME: optionalText,
  REDIS_SENTINEL_PASSWORD: optionalText,
  REDIS_PASSWORD: optionalText,
  ISSUER: optionalText,
  AUDIENCE: optionalText,
  JWT_ALG: z.enum(JWT_ALGORITHMS, { message: `expected one of ${JWT_ALGORITHMS.join(', ')}` }).default('EdDSA'),
  JWT_PRIVATE_KEY: optionalText,
  JWT_PRIVATE_KEY_FILE: optionalText,
  JWT_PREVIOUS_KEYS: optionalText,
  JWT_PREVIOUS_KEYS_FILE: optionalText,
  MFA_ENCRYPTION_KEY: optionalText,
  MFA_ENCRYPTION_KEY_FILE: optionalText,
  JWT_CLOCK_TOLERANCE: duration('5s', 0),
  ACCESS_TOKEN_TTL: duration('15m'),
  REFRESH_TOKEN_TTL: duration('30d'),
  SESSION_MAX_AGE: duration('90d'),
  REFRESH_REUSE_GRACE: duration('10s'),
  BCRYPT_COST: z.coerce.number().int().min(4, 'expected an integer from 4 to 31').max(31).default(12),
  USER_CACHE_SIZE: z.coerce
    .number()
    .int()
    .min(0, 'expected an integer from 0 to 10000000')
    .max(10_000_000)
    .default(10_000),
  CORS_ORIGINS: list,
  REFRESH_COOKIE_NAME: z
    .string()
    .trim()
    .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/, "expected a cookie name: 1-64 letters, digits or !#$%&'*+-.^_`|~")
    .default('refresh_token'),
  REFRESH_COOKIE_DOMAIN: optionalText.refine(
    (v) =>
      v === undefined ||
      /^\.?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i.test(v),
    'expected a domain name, like example.com',
  ),
  REFRESH_COOKIE_SAMESITE: z.enum(['Strict', 'Lax'], { message: 'expected Strict or Lax' }).default('Strict'),
  TRUST_PROXY: proxyHops.default(0),
  GRAPHIQL: bool.optional(),
  METRICS_TOKEN: optionalText,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SMTP_URL: optionalText.refine(
    (v) => v === undefined || (/^smtps?:\/\/[^/]/.test(v) && decodableUrl(v)),
    'expected smtp://[user:pass@]host[:port] or smtps://…',
  ),
  MAIL_FROM: optionalText.refine(
    (v) => v === undefined || /@/.test(v),
    'expected an address, like no-reply@example.com or "Auth <no-reply@example.com>"',
  ),
  PRODUCT_NAME: z.string().trim().min(1).max(100).default('Auth'),
  APP_URL: optionalText.refine(
    (v) => v === undefined || (/^https?:\/\//.test(v) && URL.canParse(v)),
    'expected an http:// or https:// URL',
  ),
  CODE_REQUEST_LIMIT: z.coerce.number().int().min(1, 'expected a positive integer').default(3),
  CODE_REQUEST_WINDOW: duration('15m', 1000),
  OAUTH_REDIRECT_URIS: list,
  OAUTH_TIMEOUT: duration('10s', 100),
  RATE_LIMIT_LOGIN_ACCOUNT: rate('5/15m'),
  RATE_LIMIT_LOGIN_IP: rate('100/15m'),
  RATE_LIMIT_LOGIN_MAX_BLOCK: duration('24h', 1000),
  RATE_LIMIT_REGISTER_IP: rate('10/1h'),
  RATE_LIMIT_REFRESH_SESSION: rate('60/1m'),
  RATE_LIMIT_CODE_ATTEMPTS: rate('10/15m'),
  RATE_LIMIT_MFA_ATTEMPTS: rate('5/15m'),
  RATE_LIMIT_OAUTH_START_IP: rate('30/15m'),
  RATE_LIMIT_PASSKEY_START_IP: rate('60/15m'),
  RATE_LIMIT_CLIENT_TOKEN: rate('30/1m'),
  RATE_LIMIT_CLIENT_TOKEN_IP: rate('120/1m'),
  INTROSPECTION: bool.optional(),
  FEDERATION_SDL: z.enum(['public', 'scoped']).optional(),
  GRAPHQL_MAX_DEPTH: positiveInt(15),
  GRAPHQL_MAX_ALIASES: positiveInt(15),
  GRAPHQL_MAX_DIRECTIVES: positiveInt(10),
  GRAPHQL_MAX_TOKENS: positiveInt(2000),
  GRAPHQL_MAX_COST: positiveInt(5000),
  WS_MAX_OPERATIONS: positiveInt(100),
  WS_MAX_MESSAGE_BYTES: positiveInt(1024 * 1024),
  WS_CONNECTION_INIT_TIMEOUT: duration('10s', 100),
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalText.refine(
    (v) => v === undefined || (/^https?:\/\/[^/]/.test(v) && URL.canParse(v)),
    'expected the OTLP/HTTP base URL, like http://otel-collector:4318',
  ),
  OTEL_SERVICE_NAME: z.string().trim().min(1).max(100).default('graphql-auth'),
  WEBAUTHN_RP_ID: optionalText.refine(
    (v) => v === undefined || DOMAIN_NAME.test(v),
    'expected a domain name, like example.com (no scheme, port or path)',
  ),
  WEBAUTHN_ORIGINS: list.refine(
    (origins) => origins.every(isWebOrigin),
    'expected comma-separated origins, like https://app.example.com (scheme, host and port only)',
  ),
  WEBAUTHN_RP_NAME: z.string().trim().min(1).max(100).optional(),
});

export type Env = Record<string, string | undefined>;

/** An origin as a browser reports it in clientDataJSON: scheme, host and port, nothing else. */
function isWebOrigin(value: string): boolean {
  return /^https?:\/\//.test(value) && URL.canParse(value) && new URL(value).origin === value;
}

/**
 * The relying party: WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS default to PUBLIC_URL's hostname and origin. Origins set
 * explicitly must be on the RP id's domain (a browser refuses any other) and be https, or http on localhost
 * (WebAuthn needs a secure context): anything else could never produce a passkey response, and is surely a typo.
 */
function parseWebAuthn(
  e: { WEBAUTHN_RP_ID?: string; WEBAUTHN_ORIGINS?: string[]; WEBAUTHN_RP_NAME?: string; PRODUCT_NAME?: string },
  publicUrl: string,
): WebAuthnConfig {
  const derived = URL.canParse(publicUrl) ? new URL(publicUrl) : undefined;
  const rpId = e.WEBAUTHN_RP_ID?.toLowerCase() ?? derived?.hostname ?? 'localhost';
  const explicit = e.WEBAUTHN_ORIGINS ?? [];
  const problems: string[] = [];
  for (const origin of explicit) {
    const { protocol, hostname } = new URL(origin);
    if (hostname !== rpId && !hostname.endsWith(`.${rpId}`)) {
      problems.push(`WEBAUTHN_ORIGINS: ${origin} is not on the domain of WEBAUTHN_RP_ID (${rpId})`);
    } else if (protocol !== 'https:' && hostname !== 'localhost' && !hostname.endsWith('.localhost')) {
      problems.push(`WEBAUTHN_ORIGINS: ${origin} must be https (passkeys work only in a secure context)`);
    }
  }
  if (problems.length) throw new ConfigError(problems);
  const origins = explicit.length ? explicit : derived ? [derived.origin] : [];
  return Object.freeze({
    rpId,
    rpName: e.WEBAUTHN_RP_NAME ?? e.PRODUCT_NAME ?? 'Auth',
    origins: Object.freeze([...origins]),
  });
}
export type ReadFile = (path: string) => string;

/** REDIS_SENTINELS with REDIS_SENTINEL_NAME, or neither; never beside REDIS_URL (which one would win?). */
function parseRedisSentinel(
  e: {
    REDIS_SENTINELS?: { host: string; port: number }[];
    REDIS_SENTINEL_NAME?: string;
    REDIS_PASSWORD?: string;
    REDIS_SENTINEL_PASSWORD?: string;
  },
  set: Record<string, string | undefined>,
): RedisSentinelConfig | undefined {
  const sentinels = e.REDIS_SENTINELS ?? [];
  if (set.REDIS_SENTINELS === undefined) {
    if (set.REDIS_SENTINEL_NAME !== undefined) {
      throw new ConfigError('REDIS_SENTINEL_NAME: set only with REDIS_SENTINELS (host:port of each sentinel)');
    }
    return undefined;
  }
  // The variable failed its own parse (reported already).
  if (sentinels.length === 0) return undefined;
  const problems: string[] = [];
  if (set.REDIS_URL !== undefined) problems.push('REDIS_SENTINELS: set either REDIS_URL or REDIS_SENTINELS, not both');
  if (!e.REDIS_SENTINEL_NAME) {
    problems.push("REDIS_SENTINEL_NAME: required with REDIS_SENTINELS (the master's name in the sentinels' config)");
  }
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze({
    sentinels: Object.freeze(sentinels.map((s) => Object.freeze(s))),
    name: e.REDIS_SENTINEL_NAME as string,
    password: e.REDIS_PASSWORD,
    sentinelPassword: e.REDIS_SENTINEL_PASSWORD,
  });
}

/**
 * A URL that parses and whose user, password and path decode (a lone `%` in a password makes decodeURIComponent
 * throw a URIError, which would end the start with a stack instead of naming the variable).
 */
function decodableUrl(url: string): boolean {
  if (!URL.canParse(url)) return false;
  const { username, password, pathname } = new URL(url);
  try {
    for (const part of [username, password, pathname]) decodeURIComponent(part);
    return true;
  } catch {
    return false;
  }
}

function parseDatabaseUrl(url: string | undefined, dataDir: string): DatabaseConfig {
  if (url === undefined) return { dialect: 'sqlite', path: `${dataDir}/auth.sqlite` };
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw new ConfigError('DATABASE_URL: expected sqlite:<path> with a file path');
    return { dialect: 'sqlite', path };
  }
  if (url.startsWith('mysql://') || url.startsWith('mariadb://')) {
    if (!decodableUrl(url)) {
      throw new ConfigError('DATABASE_URL: expected mysql://user:pass@host:port/db (special characters %-encoded)');
    }
    const parsed = new URL(url);
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

/** 32 bytes written as 64 hex digits, or in base64 or base64url (padding optional); undefined otherwise. */
function parseMfaKey(text: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (!/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) return undefined;
  const key = Buffer.from(text.replace(/\+/g, '-').replace(/\//g, '_').replace(/=$/, ''), 'base64url');
  return key.length === 32 ? key : undefined;
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

/**
 * Builds the Config from an environment; throws one ConfigError listing every variable at fault (one line each),
 * so a deployment is fixed in one round rather than one restart per mistake.
 */
export function loadConfig(env: Env, readFile: ReadFile): Config {
  // A variable set to nothing (PORT=) means "use the default", not "the empty value".
  const set = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ''));
  const problems: string[] = [];
  /** Runs one check; a ConfigError it throws joins the list instead of ending the start. */
  const check = <T>(run: () => T): T | undefined => {
    try {
      return run();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems);
      return undefined;
    }
  };
  // Each variable on its own, so every bad one is reported, each with its first issue only.
  const parsed: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(schema.shape)) {
    const result = (field as z.ZodType).safeParse(set[name]);
    if (result.success) parsed[name] = result.data;
    else problems.push(`${name}: ${result.error.issues[0]?.message ?? 'invalid value'}`);
  }
  // Below, a variable that failed its own parse is undefined: checks across variables skip it.
  const e = parsed as z.output<typeof schema>;
  const production = e.NODE_ENV === 'production';
  const publicUrl = (e.PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/$/, '');
  const privateKey = check(() => readKey(e.JWT_PRIVATE_KEY, e.JWT_PRIVATE_KEY_FILE, 'JWT_PRIVATE_KEY', readFile));
  const previousKeys = check(() =>
    readKey(e.JWT_PREVIOUS_KEYS, e.JWT_PREVIOUS_KEYS_FILE, 'JWT_PREVIOUS_KEYS', readFile),
  );
  const mfaEncryptionKey = check(() => {
    const text = readKey(e.MFA_ENCRYPTION_KEY, e.MFA_ENCRYPTION_KEY_FILE, 'MFA_ENCRYPTION_KEY', readFile);
    if (text === undefined) return undefined;
    const key = parseMfaKey(text.trim());
    if (!key) {
      const name = e.MFA_ENCRYPTION_KEY_FILE === undefined ? 'MFA_ENCRYPTION_KEY' : 'MFA_ENCRYPTION_KEY_FILE';
      throw new ConfigError(`${name}: expected 32 bytes in hex (64 digits) or base64/base64url`);
    }
    return key;
  });
  // TOTP secrets encrypted with a key that lives only in one container's data folder would be lost with it.
  if (production && mfaEncryptionKey === undefined && !problems.some((p) => p.startsWith('MFA_ENCRYPTION_KEY'))) {
    problems.push(
      'MFA_ENCRYPTION_KEY: required when NODE_ENV=production (32 random bytes in hex or base64, e.g. `openssl rand -base64 32`; it encrypts TOTP secrets)',
    );
  }
  const keyProblem = problems.some((problem) => problem.startsWith('JWT_PRIVATE_KEY'));
  if (privateKey === undefined && production && !keyProblem) {
    problems.push(
      'JWT_PRIVATE_KEY: required when NODE_ENV=production (a PKCS#8 PEM, or for HS256 a secret of 32+ bytes)',
    );
  }
  // Counted as the key store uses it: trimmed (a secret file usually ends with a newline).
  if (privateKey !== undefined && e.JWT_ALG === 'HS256' && Buffer.byteLength(privateKey.trim()) < 32) {
    problems.push('JWT_PRIVATE_KEY: the HS256 secret must be at least 32 bytes');
  }
  if (e.ACCESS_TOKEN_TTL > e.REFRESH_TOKEN_TTL) {
    problems.push('ACCESS_TOKEN_TTL: must not be longer than REFRESH_TOKEN_TTL');
  }
  if (e.REFRESH_TOKEN_TTL > e.SESSION_MAX_AGE) {
    problems.push('REFRESH_TOKEN_TTL: must not be longer than SESSION_MAX_AGE');
  }
  // Email verification and password reset always send mail; only development may write it to files instead.
  if (production && set.SMTP_URL === undefined) {
    problems.push(
      'SMTP_URL: required when NODE_ENV=production (smtp://user:pass@host:587 or smtps://…; verification and reset codes are mailed)',
    );
  }
  if (production && set.MAIL_FROM === undefined) {
    problems.push('MAIL_FROM: required when NODE_ENV=production (e.g. "Auth <no-reply@example.com>")');
  }
  const database = check(() => parseDatabaseUrl(e.DATABASE_URL, e.DATA_DIR ?? './data'));
  const redisSentinel = check(() => parseRedisSentinel(e, set));
  const oauth = parseOAuth(set, e.OAUTH_REDIRECT_URIS ?? [], e.OAUTH_TIMEOUT ?? 10_000, production, check);
  const webauthn = check(() => parseWebAuthn(e, publicUrl));
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    publicUrl,
    database: database as DatabaseConfig,
    redisUrl: e.REDIS_URL,
    redisSentinel,
    dataDir: e.DATA_DIR,
    mfaEncryptionKey,
    issuer: e.ISSUER ?? publicUrl,
    audience: e.AUDIENCE ?? publicUrl,
    jwt: Object.freeze({
      alg: e.JWT_ALG,
      privateKey,
      previousKeys,
      clockToleranceMs: e.JWT_CLOCK_TOLERANCE,
    }),
    accessTokenTtlMs: e.ACCESS_TOKEN_TTL,
    refreshTokenTtlMs: e.REFRESH_TOKEN_TTL,
    sessionMaxAgeMs: e.SESSION_MAX_AGE,
    refreshReuseGraceMs: e.REFRESH_REUSE_GRACE,
    bcryptCost: e.BCRYPT_COST,
    userCacheSize: e.USER_CACHE_SIZE,
    corsOrigins: Object.freeze(e.CORS_ORIGINS),
    refreshCookie: Object.freeze({
      name: e.REFRESH_COOKIE_NAME,
      domain: e.REFRESH_COOKIE_DOMAIN?.trim(),
      sameSite: e.REFRESH_COOKIE_SAMESITE,
      // Browsers keep a Secure cookie only from https, localhost excepted: a local http setup is development.
      secure: production || !/^http:\/\/(?:localhost|127\.0\.0\.1)(?::\d+)?$/.test(publicUrl),
    }),
    trustProxy: e.TRUST_PROXY,
    graphiql: e.GRAPHIQL ?? !production,
    metricsToken: e.METRICS_TOKEN,
    logLevel: e.LOG_LEVEL,
    mail: Object.freeze({
      smtpUrl: e.SMTP_URL,
      from: e.MAIL_FROM ?? `${e.PRODUCT_NAME} <no-reply@localhost>`,
      productName: e.PRODUCT_NAME,
      appUrl: (e.APP_URL ?? publicUrl).replace(/\/$/, ''),
    }),
    codeRequests: Object.freeze({ limit: e.CODE_REQUEST_LIMIT, windowMs: e.CODE_REQUEST_WINDOW }),
    oauth,
    rateLimits: Object.freeze({
      loginAccount: e.RATE_LIMIT_LOGIN_ACCOUNT,
      loginIp: e.RATE_LIMIT_LOGIN_IP,
      loginMaxBlockSeconds: Math.ceil(e.RATE_LIMIT_LOGIN_MAX_BLOCK / 1000),
      registerIp: e.RATE_LIMIT_REGISTER_IP,
      refreshSession: e.RATE_LIMIT_REFRESH_SESSION,
      codeAttempts: e.RATE_LIMIT_CODE_ATTEMPTS,
      mfaAttempts: e.RATE_LIMIT_MFA_ATTEMPTS,
      oauthStartIp: e.RATE_LIMIT_OAUTH_START_IP,
      passkeyStartIp: e.RATE_LIMIT_PASSKEY_START_IP,
      clientToken: e.RATE_LIMIT_CLIENT_TOKEN,
      clientTokenIp: e.RATE_LIMIT_CLIENT_TOKEN_IP,
    }),
    introspection: e.INTROSPECTION ?? !production,
    federationSdl: e.FEDERATION_SDL ?? (production ? 'scoped' : 'public'),
    graphqlLimits: Object.freeze({
      maxDepth: e.GRAPHQL_MAX_DEPTH,
      maxAliases: e.GRAPHQL_MAX_ALIASES,
      maxDirectives: e.GRAPHQL_MAX_DIRECTIVES,
      maxTokens: e.GRAPHQL_MAX_TOKENS,
      maxCost: e.GRAPHQL_MAX_COST,
    }),
    telemetry: e.OTEL_EXPORTER_OTLP_ENDPOINT
      ? Object.freeze({
          endpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, ''),
          serviceName: e.OTEL_SERVICE_NAME,
        })
      : undefined,
    webSocket: Object.freeze({
      maxOperations: e.WS_MAX_OPERATIONS,
      maxMessageBytes: e.WS_MAX_MESSAGE_BYTES,
      connectionInitTimeoutMs: e.WS_CONNECTION_INIT_TIMEOUT,
    }),
    webauthn: webauthn as WebAuthnConfig,
  });
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
const onLoopback = (url: string) => URL.canParse(url) && LOOPBACK_HOSTS.has(new URL(url).hostname);

/**
 * What a production configuration allows but an operator should look at twice, one line each naming the
 * variable (main.ts logs them at warn). Empty outside production.
 */
export function configWarnings(config: Config): string[] {
  if (config.env !== 'production') return [];
  const warnings: string[] = [];
  if (config.database.dialect === 'sqlite') {
    warnings.push('DATABASE_URL: SQLite in production serves one instance only; use mysql://… to run several');
  }
  if (onLoopback(config.issuer)) {
    warnings.push(
      `ISSUER: ${config.issuer} is on localhost; tokens name it as their issuer (set PUBLIC_URL or ISSUER)`,
    );
  }
  if (onLoopback(config.audience)) {
    warnings.push(
      `AUDIENCE: ${config.audience} is on localhost; resource servers check it (set PUBLIC_URL or AUDIENCE)`,
    );
  }
  for (const origin of config.corsOrigins) {
    if (!/^https?:\/\//.test(origin)) {
      warnings.push(`CORS_ORIGINS: "${origin}" has no scheme and matches no browser origin (write https://${origin})`);
    }
  }
  if (config.metricsToken === undefined) {
    warnings.push('METRICS_TOKEN: unset, so GET /metrics answers anyone who can reach the port');
  }
  return warnings;
}

const OIDC_VARIABLE = /^OAUTH_OIDC_([A-Z0-9_]+?)_(ISSUER|CLIENT_ID|CLIENT_SECRET|DISPLAY_NAME)$/;

/** https:// anywhere; http:// only on loopback outside production (a local or test provider). */
function providerUrl(name: string, value: string, production: boolean): string {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  const loopback = url !== undefined && ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
  if (url?.protocol === 'https:' || (url?.protocol === 'http:' && loopback && !production)) return value;
  throw new ConfigError(`${name}: expected an https:// URL, got "${value}"`);
}

function credentials(env: Env, prefix: string) {
  const clientId = env[`${prefix}_CLIENT_ID`]?.trim();
  const clientSecret = env[`${prefix}_CLIENT_SECRET`]?.trim();
  if (clientId === undefined && clientSecret === undefined) return undefined;
  if (clientId === undefined)
    throw new ConfigError(`${prefix}_CLIENT_ID: required when ${prefix}_CLIENT_SECRET is set`);
  if (clientSecret === undefined) {
    throw new ConfigError(`${prefix}_CLIENT_SECRET: required when ${prefix}_CLIENT_ID is set`);
  }
  return { clientId, clientSecret };
}

type Check = <T>(run: () => T) => T | undefined;

/**
 * OAUTH_GITHUB_*, OAUTH_GOOGLE_* and any number of OAUTH_OIDC_<NAME>_* (provider id: the lower-cased NAME).
 * Each provider is checked on its own (`check` collects what is wrong), so all of them are reported at once.
 */
function parseOAuth(
  env: Env,
  redirectUris: string[],
  timeoutMs: number,
  production: boolean,
  check: Check,
): OAuthConfig {
  const providers: OAuthProviderConfig[] = [];
  const github = check(() => credentials(env, 'OAUTH_GITHUB'));
  if (github) {
    const url = (name: string, fallback: string) => providerUrl(name, env[name]?.trim() ?? fallback, production);
    const authorizeUrl = check(() => url('OAUTH_GITHUB_AUTHORIZE_URL', 'https://github.com/login/oauth/authorize'));
    const tokenUrl = check(() => url('OAUTH_GITHUB_TOKEN_URL', 'https://github.com/login/oauth/access_token'));
    const apiUrl = check(() => url('OAUTH_GITHUB_API_URL', 'https://api.github.com').replace(/\/+$/, ''));
    if (authorizeUrl && tokenUrl && apiUrl) {
      providers.push({ kind: 'github', id: 'github', name: 'GitHub', ...github, authorizeUrl, tokenUrl, apiUrl });
    }
  }
  const google = check(() => credentials(env, 'OAUTH_GOOGLE'));
  if (google) {
    const issuer = env.OAUTH_GOOGLE_ISSUER?.trim() ?? 'https://accounts.google.com';
    check(() =>
      providers.push({
        kind: 'oidc',
        id: 'google',
        name: 'Google',
        ...google,
        issuer: providerUrl('OAUTH_GOOGLE_ISSUER', issuer, production),
      }),
    );
  }
  const names = new Set<string>();
  for (const variable of Object.keys(env)
    .filter((name) => name.startsWith('OAUTH_OIDC_'))
    .sort()) {
    const match = OIDC_VARIABLE.exec(variable);
    if (match) names.add(match[1] as string);
    else
      check(() => {
        throw new ConfigError(
          `${variable}: expected OAUTH_OIDC_<NAME>_ISSUER, _CLIENT_ID, _CLIENT_SECRET or _DISPLAY_NAME (NAME: A-Z, 0-9, _)`,
        );
      });
  }
  for (const name of names)
    check(() => {
      const prefix = `OAUTH_OIDC_${name}`;
      const id = name.toLowerCase();
      if (id === 'github' || id === 'google') {
        throw new ConfigError(`${prefix}_ISSUER: the provider id "${id}" is taken; configure it with OAUTH_${name}_*`);
      }
      const pair = credentials(env, prefix);
      if (!pair) throw new ConfigError(`${prefix}_CLIENT_ID: required for the OpenID Connect provider "${id}"`);
      const issuer = env[`${prefix}_ISSUER`]?.trim();
      if (issuer === undefined)
        throw new ConfigError(`${prefix}_ISSUER: required for the OpenID Connect provider "${id}"`);
      providers.push({
        kind: 'oidc',
        id,
        name: env[`${prefix}_DISPLAY_NAME`]?.trim() || name.charAt(0) + name.slice(1).toLowerCase(),
        ...pair,
        issuer: providerUrl(`${prefix}_ISSUER`, issuer, production),
      });
    });
  // Compared byte for byte with what clients send; a query would not survive the token request.
  const badUri = redirectUris.find((uri) => !URL.canParse(uri) || uri.includes('#') || uri.includes('?'));
  check(() => {
    if (badUri !== undefined) {
      throw new ConfigError(`OAUTH_REDIRECT_URIS: "${badUri}" is not an absolute URL without query or fragment`);
    }
    if (redirectUris.length === 0 && (providers.length > 0 || names.size > 0)) {
      throw new ConfigError(
        'OAUTH_REDIRECT_URIS: required when an OAuth provider is configured (comma-separated URLs)',
      );
    }
  });
  return Object.freeze({
    redirectUris: Object.freeze(redirectUris),
    timeoutMs,
    providers: Object.freeze(providers.map((provider) => Object.freeze(provider))),
  });
}
