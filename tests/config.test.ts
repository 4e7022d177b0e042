import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, configWarnings, type Env, loadConfig, parseDuration, type ReadFile } from '../src/config.ts';
import { ed25519Pem } from './support/expect.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;

const noFiles: ReadFile = (path) => {
  throw new Error(`unexpected read of ${path}`);
};
const filesOf =
  (files: Record<string, string>): ReadFile =>
  (path) => {
    const content = files[path];
    if (content === undefined) throw new Error(`ENOENT: ${path}`);
    return content;
  };

const pem = ed25519Pem();
const secret32 = 's'.repeat(32);
const productionMail = { SMTP_URL: 'smtps://mailer:secret@smtp.example.com', MAIL_FROM: 'no-reply@example.com' };
/** Production requires the MFA key too (it encrypts TOTP secrets). */
const MFA_ENCRYPTION_KEY = Buffer.alloc(32, 5).toString('base64');

/** The ConfigError thrown for an environment, or a failure when there is none. */
function configError(env: Env, readFile: ReadFile = noFiles): ConfigError {
  try {
    loadConfig(env, readFile);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('parseDuration', () => {
  it('reads milliseconds, seconds, minutes, hours and days', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('15m')).toBe(15 * MINUTE);
    expect(parseDuration('12h')).toBe(12 * 60 * MINUTE);
    expect(parseDuration('30d')).toBe(30 * DAY);
    expect(parseDuration('0s')).toBe(0);
    expect(parseDuration(' 5s ')).toBe(5_000);
  });

  it('refuses a number without a unit, an unknown unit, a sign, a fraction or a space inside', () => {
    for (const value of ['15', '15w', '-5s', '1.5h', '5 s', 's', '', '15M', '1e3ms']) {
      expect(parseDuration(value), value).toBeUndefined();
    }
  });
});

describe('loadConfig defaults', () => {
  it('fills every default in development', () => {
    expect(loadConfig({}, noFiles)).toEqual({
      env: 'development',
      port: 4000,
      host: '0.0.0.0',
      publicUrl: 'http://localhost:4000',
      database: { dialect: 'sqlite', path: './data/auth.sqlite' },
      dataDir: './data',
      issuer: 'http://localhost:4000',
      audience: 'http://localhost:4000',
      jwt: { alg: 'EdDSA', privateKey: undefined, previousKeys: undefined, clockToleranceMs: 5_000 },
      accessTokenTtlMs: 15 * MINUTE,
      refreshTokenTtlMs: 30 * DAY,
      sessionMaxAgeMs: 90 * DAY,
      refreshReuseGraceMs: 10_000,
      bcryptCost: 12,
      corsOrigins: [],
      refreshCookie: { name: 'refresh_token', domain: undefined, sameSite: 'Strict', secure: false },
      trustProxy: 0,
      graphiql: true,
      logLevel: 'info',
      metricsToken: undefined,
      redisUrl: undefined,
      redisSentinel: undefined,
      telemetry: undefined,
      userCacheSize: 10_000,
      mail: {
        smtpUrl: undefined,
        from: 'Auth <no-reply@localhost>',
        productName: 'Auth',
        appUrl: 'http://localhost:4000',
      },
      codeRequests: { limit: 3, windowMs: 15 * MINUTE },
      oauth: { redirectUris: [], timeoutMs: 10_000, providers: [] },
      rateLimits: {
        loginAccount: { points: 5, durationSeconds: 900 },
        loginIp: { points: 100, durationSeconds: 900 },
        loginMaxBlockSeconds: 86_400,
        registerIp: { points: 10, durationSeconds: 3600 },
        refreshSession: { points: 60, durationSeconds: 60 },
        codeAttempts: { points: 10, durationSeconds: 900 },
        mfaAttempts: { points: 5, durationSeconds: 900 },
        oauthStartIp: { points: 30, durationSeconds: 900 },
        passkeyStartIp: { points: 60, durationSeconds: 900 },
        clientToken: { points: 30, durationSeconds: 60 },
        clientTokenIp: { points: 120, durationSeconds: 60 },
      },
      introspection: true,
      federationSdl: 'public',
      graphqlLimits: { maxDepth: 15, maxAliases: 15, maxDirectives: 10, maxTokens: 2000, maxCost: 5000 },
      webSocket: { maxOperations: 100, maxMessageBytes: 1024 * 1024, connectionInitTimeoutMs: 10_000 },
      webauthn: { rpId: 'localhost', rpName: 'Auth', origins: ['http://localhost:4000'] },
    });
  });

  it('reads rate limits as N/duration and names the variable of a bad one', () => {
    expect(loadConfig({ RATE_LIMIT_LOGIN_IP: '20/1h' }, noFiles).rateLimits.loginIp).toEqual({
      points: 20,
      durationSeconds: 3600,
    });
    for (const bad of ['20', '0/1m', '5/15', '5/500ms', 'x/1m', '5/1m/2']) {
      expect(() => loadConfig({ RATE_LIMIT_LOGIN_ACCOUNT: bad }, noFiles)).toThrow(
        `RATE_LIMIT_LOGIN_ACCOUNT: expected N/duration like 5/15m or 100/1h, got "${bad}"`,
      );
    }
    expect(() => loadConfig({ GRAPHQL_MAX_DEPTH: '0' }, noFiles)).toThrow(
      'GRAPHQL_MAX_DEPTH: expected a positive integer',
    );
  });

  it('gates the subgraph SDL in production unless FEDERATION_SDL=public, and refuses other values', () => {
    const production = {
      NODE_ENV: 'production',
      JWT_PRIVATE_KEY: ed25519Pem(),
      SMTP_URL: 'smtp://mail.test',
      MAIL_FROM: 'a@b.test',
      MFA_ENCRYPTION_KEY,
    };
    expect(loadConfig(production, noFiles).federationSdl).toBe('scoped');
    expect(loadConfig({ ...production, FEDERATION_SDL: 'public' }, noFiles).federationSdl).toBe('public');
    expect(loadConfig({ FEDERATION_SDL: 'scoped' }, noFiles).federationSdl).toBe('scoped');
    expect(() => loadConfig({ FEDERATION_SDL: 'open' }, noFiles)).toThrow(/^FEDERATION_SDL: /);
  });

  it('turns introspection off in production unless INTROSPECTION=true', () => {
    const production = { NODE_ENV: 'production', JWT_PRIVATE_KEY: pem, MFA_ENCRYPTION_KEY, ...productionMail };
    expect(loadConfig(production, noFiles).introspection).toBe(false);
    expect(loadConfig({ ...production, INTROSPECTION: 'true' }, noFiles).introspection).toBe(true);
    expect(loadConfig({ INTROSPECTION: 'false' }, noFiles).introspection).toBe(false);
  });

  it('returns a frozen config', () => {
    const config = loadConfig({}, noFiles);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.jwt)).toBe(true);
    expect(Object.isFrozen(config.corsOrigins)).toBe(true);
  });

  it('disables GraphiQL in production unless GRAPHIQL=true', () => {
    const production = { NODE_ENV: 'production', JWT_PRIVATE_KEY: pem, MFA_ENCRYPTION_KEY, ...productionMail };
    expect(loadConfig(production, noFiles).graphiql).toBe(false);
    expect(loadConfig({ ...production, GRAPHIQL: 'true' }, noFiles).graphiql).toBe(true);
    expect(loadConfig({ GRAPHIQL: 'false' }, noFiles).graphiql).toBe(false);
    expect(loadConfig({ NODE_ENV: 'test' }, noFiles).graphiql).toBe(true);
  });

  it('reads the mail settings; links in mail point to APP_URL, or PUBLIC_URL without one', () => {
    const config = loadConfig(
      {
        ...productionMail,
        PRODUCT_NAME: 'Acme ID',
        APP_URL: 'https://app.example.com/',
        CODE_REQUEST_LIMIT: '5',
        CODE_REQUEST_WINDOW: '1h',
      },
      noFiles,
    );
    expect(config.mail).toEqual({
      smtpUrl: 'smtps://mailer:secret@smtp.example.com',
      from: 'no-reply@example.com',
      productName: 'Acme ID',
      appUrl: 'https://app.example.com',
    });
    expect(config.codeRequests).toEqual({ limit: 5, windowMs: 60 * MINUTE });
    expect(loadConfig({ PUBLIC_URL: 'https://auth.example.com/' }, noFiles).mail.appUrl).toBe(
      'https://auth.example.com',
    );
  });

  it('derives issuer and audience from PUBLIC_URL without its trailing slash, unless set', () => {
    const config = loadConfig({ PUBLIC_URL: 'https://auth.example.com/' }, noFiles);
    expect(config.publicUrl).toBe('https://auth.example.com');
    expect(config.issuer).toBe('https://auth.example.com');
    expect(config.audience).toBe('https://auth.example.com');
    const explicit = loadConfig({ ISSUER: 'https://iss.test', AUDIENCE: 'https://aud.test' }, noFiles);
    expect([explicit.issuer, explicit.audience]).toEqual(['https://iss.test', 'https://aud.test']);
  });

  it('reads durations, lists and booleans', () => {
    const config = loadConfig(
      {
        ACCESS_TOKEN_TTL: '5m',
        REFRESH_TOKEN_TTL: '1d',
        SESSION_MAX_AGE: '7d',
        REFRESH_REUSE_GRACE: '2s',
        JWT_CLOCK_TOLERANCE: '0s',
        CORS_ORIGINS: ' https://a.test, ,https://b.test ',
        TRUST_PROXY: 'yes',
      },
      noFiles,
    );
    expect(config.accessTokenTtlMs).toBe(5 * MINUTE);
    expect(config.refreshTokenTtlMs).toBe(DAY);
    expect(config.sessionMaxAgeMs).toBe(7 * DAY);
    expect(config.refreshReuseGraceMs).toBe(2_000);
    expect(config.jwt.clockToleranceMs).toBe(0);
    expect(config.corsOrigins).toEqual(['https://a.test', 'https://b.test']);
    expect(config.trustProxy).toBe(1);
  });

  it('reads TRUST_PROXY as false, true (one proxy) or a number of proxies', () => {
    const hops = (TRUST_PROXY: string) => loadConfig({ TRUST_PROXY }, noFiles).trustProxy;
    expect([hops('false'), hops('0'), hops('true'), hops('1'), hops('2'), hops(' 3 ')]).toEqual([0, 0, 1, 1, 2, 3]);
    expect(loadConfig({}, noFiles).trustProxy).toBe(0);
  });

  it('reads the WebSocket limits', () => {
    const config = loadConfig(
      { WS_MAX_OPERATIONS: '5', WS_MAX_MESSAGE_BYTES: '4096', WS_CONNECTION_INIT_TIMEOUT: '2s' },
      noFiles,
    );
    expect(config.webSocket).toEqual({ maxOperations: 5, maxMessageBytes: 4096, connectionInitTimeoutMs: 2000 });
  });

  it('treats blank optional variables as unset', () => {
    const config = loadConfig({ JWT_PRIVATE_KEY: '  ', DATABASE_URL: '', ISSUER: ' ' }, noFiles);
    expect(config.jwt.privateKey).toBeUndefined();
    expect(config.database).toEqual({ dialect: 'sqlite', path: './data/auth.sqlite' });
    expect(config.issuer).toBe('http://localhost:4000');
  });
});

describe('DATABASE_URL', () => {
  it('reads a relative SQLite path', () => {
    expect(loadConfig({ DATABASE_URL: 'sqlite:var/auth.db' }, noFiles).database).toEqual({
      dialect: 'sqlite',
      path: 'var/auth.db',
    });
  });

  it('reads an absolute SQLite path, with or without the URL slashes', () => {
    expect(loadConfig({ DATABASE_URL: 'sqlite:/srv/auth.db' }, noFiles).database).toEqual({
      dialect: 'sqlite',
      path: '/srv/auth.db',
    });
    expect(loadConfig({ DATABASE_URL: 'sqlite:///srv/auth.db' }, noFiles).database).toEqual({
      dialect: 'sqlite',
      path: '/srv/auth.db',
    });
  });

  it('puts the default SQLite file under DATA_DIR', () => {
    expect(loadConfig({ DATA_DIR: '/var/lib/auth' }, noFiles).database).toEqual({
      dialect: 'sqlite',
      path: '/var/lib/auth/auth.sqlite',
    });
  });

  it('reads a MySQL URL, decoding the password', () => {
    const url = 'mysql://user:p%40ss@host:3307/db';
    expect(loadConfig({ DATABASE_URL: url }, noFiles).database).toEqual({
      dialect: 'mysql',
      url,
      host: 'host',
      port: 3307,
      user: 'user',
      password: 'p@ss',
      dbName: 'db',
    });
  });

  it('defaults the MySQL port to 3306 and accepts mariadb://', () => {
    expect(loadConfig({ DATABASE_URL: 'mariadb://root@db.internal/auth' }, noFiles).database).toMatchObject({
      dialect: 'mysql',
      host: 'db.internal',
      port: 3306,
      user: 'root',
      password: '',
      dbName: 'auth',
    });
  });

  it('refuses another scheme, an empty SQLite path and a MySQL URL without a database', () => {
    expect(configError({ DATABASE_URL: 'postgres://user:pass@host:5432/db' }).message).toBe(
      'DATABASE_URL: expected sqlite:<path> or mysql://user:pass@host:port/db',
    );
    expect(configError({ DATABASE_URL: 'sqlite:' }).message).toBe(
      'DATABASE_URL: expected sqlite:<path> with a file path',
    );
    expect(configError({ DATABASE_URL: 'mysql://user:pass@host:3306/' }).message).toBe(
      'DATABASE_URL: expected mysql://user:pass@host:port/db',
    );
  });
});

describe('invalid configuration', () => {
  it.each([
    [{ PORT: 'abc' }, 'PORT: '],
    [{ PORT: '70000' }, 'PORT: '],
    [{ NODE_ENV: 'staging' }, 'NODE_ENV: '],
    [{ JWT_ALG: 'RS512' }, 'JWT_ALG: expected one of EdDSA, ES256, RS256, HS256'],
    [{ JWT_ALG: 'none' }, 'JWT_ALG: expected one of EdDSA, ES256, RS256, HS256'],
    [{ ACCESS_TOKEN_TTL: '15' }, 'ACCESS_TOKEN_TTL: expected a duration like 90s, 15m, 12h or 30d, got "15"'],
    [{ REFRESH_TOKEN_TTL: '0d' }, 'REFRESH_TOKEN_TTL: expected a duration like 90s, 15m, 12h or 30d, got "0d"'],
    [{ JWT_CLOCK_TOLERANCE: '5' }, 'JWT_CLOCK_TOLERANCE: expected a duration like 90s, 15m, 12h or 30d, got "5"'],
    [{ BCRYPT_COST: '3' }, 'BCRYPT_COST: expected an integer from 4 to 31'],
    [{ BCRYPT_COST: '32' }, 'BCRYPT_COST: '],
    [{ BCRYPT_COST: '10.5' }, 'BCRYPT_COST: '],
    [{ TRUST_PROXY: 'maybe' }, 'TRUST_PROXY: expected true or false'],
    [{ TRUST_PROXY: '-1' }, 'TRUST_PROXY: expected true or false, or the number of trusted proxies'],
    [{ TRUST_PROXY: '1.5' }, 'TRUST_PROXY: expected true or false, or the number of trusted proxies'],
    [{ WS_MAX_OPERATIONS: '0' }, 'WS_MAX_OPERATIONS: expected a positive integer'],
    [{ WS_MAX_MESSAGE_BYTES: 'big' }, 'WS_MAX_MESSAGE_BYTES: '],
    [{ WS_CONNECTION_INIT_TIMEOUT: '10' }, 'WS_CONNECTION_INIT_TIMEOUT: expected a duration'],
    [{ GRAPHIQL: 'on' }, 'GRAPHIQL: expected true or false'],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL: '],
    [
      { ACCESS_TOKEN_TTL: '2d', REFRESH_TOKEN_TTL: '1d' },
      'ACCESS_TOKEN_TTL: must not be longer than REFRESH_TOKEN_TTL',
    ],
    [{ REFRESH_TOKEN_TTL: '100d' }, 'REFRESH_TOKEN_TTL: must not be longer than SESSION_MAX_AGE'],
    [{ SMTP_URL: 'mail.example.com:25' }, 'SMTP_URL: expected smtp://[user:pass@]host[:port] or smtps://…'],
    [{ SMTP_URL: 'http://mail.example.com' }, 'SMTP_URL: expected smtp://[user:pass@]host[:port] or smtps://…'],
    [{ MAIL_FROM: 'nobody' }, 'MAIL_FROM: expected an address'],
    [{ APP_URL: 'app.example.com' }, 'APP_URL: expected an http:// or https:// URL'],
    [{ CODE_REQUEST_LIMIT: '0' }, 'CODE_REQUEST_LIMIT: expected a positive integer'],
    [{ CODE_REQUEST_WINDOW: '15' }, 'CODE_REQUEST_WINDOW: expected a duration like 90s, 15m, 12h or 30d, got "15"'],
  ] as [Env, string][])('refuses %o with a message starting with the variable', (env, prefix) => {
    expect(configError(env).message.startsWith(prefix)).toBe(true);
  });

  it('requires a key in production', () => {
    expect(
      configError({ NODE_ENV: 'production', SMTP_URL: 'smtp://mail:25', MAIL_FROM: 'a@b.c', MFA_ENCRYPTION_KEY })
        .problems,
    ).toEqual([
      'JWT_PRIVATE_KEY: required when NODE_ENV=production (a PKCS#8 PEM, or for HS256 a secret of 32+ bytes)',
    ]);
  });

  it('requires SMTP_URL and MAIL_FROM in production: verification and reset codes are mailed', () => {
    expect(configError({ NODE_ENV: 'production', JWT_PRIVATE_KEY: pem, MFA_ENCRYPTION_KEY }).problems).toEqual([
      'SMTP_URL: required when NODE_ENV=production (smtp://user:pass@host:587 or smtps://…; verification and reset codes are mailed)',
      'MAIL_FROM: required when NODE_ENV=production (e.g. "Auth <no-reply@example.com>")',
    ]);
    expect(
      configError({ NODE_ENV: 'production', JWT_PRIVATE_KEY: pem, MFA_ENCRYPTION_KEY, SMTP_URL: 'smtp://mail:25' })
        .problems,
    ).toEqual(['MAIL_FROM: required when NODE_ENV=production (e.g. "Auth <no-reply@example.com>")']);
  });

  it('refuses an HS256 secret under 32 bytes', () => {
    expect(configError({ JWT_ALG: 'HS256', JWT_PRIVATE_KEY: 's'.repeat(31) }).message).toBe(
      'JWT_PRIVATE_KEY: the HS256 secret must be at least 32 bytes',
    );
    expect(loadConfig({ JWT_ALG: 'HS256', JWT_PRIVATE_KEY: secret32 }, noFiles).jwt.privateKey).toBe(secret32);
  });

  it('counts the HS256 secret without the whitespace the key store trims, such as a file’s final newline', () => {
    const readFile = filesOf({ '/run/secrets/jwt': `${'s'.repeat(31)}\n` });
    expect(configError({ JWT_ALG: 'HS256', JWT_PRIVATE_KEY_FILE: '/run/secrets/jwt' }, readFile).message).toBe(
      'JWT_PRIVATE_KEY: the HS256 secret must be at least 32 bytes',
    );
    expect(configError({ JWT_ALG: 'HS256', JWT_PRIVATE_KEY: ` ${'s'.repeat(31)} ` }).message).toBe(
      'JWT_PRIVATE_KEY: the HS256 secret must be at least 32 bytes',
    );
  });

  it('refuses JWT_PRIVATE_KEY together with JWT_PRIVATE_KEY_FILE', () => {
    expect(configError({ JWT_PRIVATE_KEY: pem, JWT_PRIVATE_KEY_FILE: '/run/secrets/jwt' }).message).toBe(
      'JWT_PRIVATE_KEY: set either JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE, not both',
    );
    expect(configError({ JWT_PREVIOUS_KEYS: pem, JWT_PREVIOUS_KEYS_FILE: '/run/secrets/old' }).message).toBe(
      'JWT_PREVIOUS_KEYS: set either JWT_PREVIOUS_KEYS or JWT_PREVIOUS_KEYS_FILE, not both',
    );
  });

  it('refuses a key file it cannot read', () => {
    expect(configError({ JWT_PRIVATE_KEY_FILE: '/nowhere/key.pem' }).message).toBe(
      'JWT_PRIVATE_KEY_FILE: cannot read the file "/nowhere/key.pem"',
    );
  });
});

describe('every configuration problem at once', () => {
  it('reports each bad variable on its own line, in one error, without echoing a secret value', () => {
    const error = configError({
      PORT: 'eighty',
      LOG_LEVEL: 'loud',
      ACCESS_TOKEN_TTL: '15',
      REDIS_URL: 'http://:hunter2-redis@cache:6379',
      SMTP_URL: 'mail://user:hunter2-smtp@mail',
      DATABASE_URL: 'postgres://user:hunter2-db@db/auth',
      JWT_ALG: 'HS256',
      JWT_PRIVATE_KEY: 'hunter2-jwt',
      METRICS_TOKEN: 'hunter2-metrics',
      OAUTH_GITHUB_CLIENT_SECRET: 'hunter2-github',
      OAUTH_OIDC_ACME_CLIENT_ID: 'acme',
      OAUTH_OIDC_ACME_CLIENT_SECRET: 'hunter2-oidc',
    });
    expect(error.problems.map((line) => line.split(':')[0])).toEqual([
      'PORT',
      'REDIS_URL',
      'ACCESS_TOKEN_TTL',
      'LOG_LEVEL',
      'SMTP_URL',
      'JWT_PRIVATE_KEY',
      'DATABASE_URL',
      'OAUTH_GITHUB_CLIENT_ID',
      'OAUTH_OIDC_ACME_ISSUER',
      'OAUTH_REDIRECT_URIS',
    ]);
    expect(error.message).toBe(error.problems.join('\n'));
    expect(error.message).not.toMatch(/hunter2/);
  });

  it('reports a variable once, with its first problem', () => {
    expect(configError({ BCRYPT_COST: '3', PORT: '-1' }).problems).toEqual([
      'PORT: Too small: expected number to be >=0',
      'BCRYPT_COST: expected an integer from 4 to 31',
    ]);
  });
});

describe('production warnings', () => {
  const production = { NODE_ENV: 'production', JWT_PRIVATE_KEY: pem, MFA_ENCRYPTION_KEY, ...productionMail };

  it('warns, one line each naming the variable, about SQLite, localhost issuer and audience, CORS origins without a scheme and open metrics', () => {
    const config = loadConfig({ ...production, CORS_ORIGINS: 'https://app.example.com,app.example.com' }, noFiles);
    expect(configWarnings(config)).toEqual([
      'DATABASE_URL: SQLite in production serves one instance only; use mysql://… to run several',
      'ISSUER: http://localhost:4000 is on localhost; tokens name it as their issuer (set PUBLIC_URL or ISSUER)',
      'AUDIENCE: http://localhost:4000 is on localhost; resource servers check it (set PUBLIC_URL or AUDIENCE)',
      'CORS_ORIGINS: "app.example.com" has no scheme and matches no browser origin (write https://app.example.com)',
      'METRICS_TOKEN: unset, so GET /metrics answers anyone who can reach the port',
    ]);
  });

  it('has nothing to say about a production set-up without those, nor outside production', () => {
    const config = loadConfig(
      {
        ...production,
        DATABASE_URL: 'mysql://auth:pw@db:3306/auth',
        PUBLIC_URL: 'https://auth.example.com',
        AUDIENCE: 'https://api.example.com',
        CORS_ORIGINS: 'https://app.example.com',
        METRICS_TOKEN: 'm'.repeat(32),
      },
      noFiles,
    );
    expect(configWarnings(config)).toEqual([]);
    expect(configWarnings(loadConfig({ CORS_ORIGINS: 'app.example.com' }, noFiles))).toEqual([]);
  });
});

describe('signing keys', () => {
  it('reads the key from JWT_PRIVATE_KEY_FILE and the previous keys from JWT_PREVIOUS_KEYS_FILE', () => {
    const config = loadConfig(
      { JWT_PRIVATE_KEY_FILE: '/keys/current.pem', JWT_PREVIOUS_KEYS_FILE: '/keys/previous.pem' },
      filesOf({ '/keys/current.pem': pem, '/keys/previous.pem': 'OLD' }),
    );
    expect(config.jwt.privateKey).toBe(pem);
    expect(config.jwt.previousKeys).toBe('OLD');
  });

  it('turns escaped newlines of an inline key into real ones', () => {
    const inline = pem.trim().replace(/\n/g, '\\n');
    expect(loadConfig({ JWT_PRIVATE_KEY: inline }, noFiles).jwt.privateKey).toBe(pem.trim());
    expect(loadConfig({ JWT_PREVIOUS_KEYS: inline }, noFiles).jwt.previousKeys).toBe(pem.trim());
  });

  it('accepts production with a key', () => {
    const config = loadConfig(
      { NODE_ENV: 'production', JWT_PRIVATE_KEY: pem, MFA_ENCRYPTION_KEY, ...productionMail },
      noFiles,
    );
    expect(config.env).toBe('production');
    expect(config.jwt.privateKey).toBe(pem);
  });
});

describe('process entry', () => {
  const root = fileURLToPath(new URL('..', import.meta.url));

  it('exits with code 1 and one line on stderr per problem, every problem at once', async () => {
    const child = spawn(`${root}node_modules/.bin/node`, ['src/main.ts'], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', PORT: 'eighty', LOG_LEVEL: 'loud' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(1);
    expect(stdout).toBe('');
    const lines = stderr.split('\n').filter((line) => line !== '');
    expect(lines.map((line) => line.replace(/^configuration error: ([A-Z_]+):.*$/, '$1'))).toEqual([
      'PORT',
      'LOG_LEVEL',
      'MFA_ENCRYPTION_KEY',
      'JWT_PRIVATE_KEY',
      'SMTP_URL',
      'MAIL_FROM',
    ]);
    expect(lines[3]).toBe(
      'configuration error: JWT_PRIVATE_KEY: required when NODE_ENV=production (a PKCS#8 PEM, or for HS256 a secret of 32+ bytes)',
    );
    expect(stderr.endsWith('\n')).toBe(true);
  });
});
