// The Dockerfile and compose.yaml cannot be built here (no Docker engine), so they are read and held to what
// the rest of the suite proves: Node 24, non-root, /readyz health, migrations then serve, and a compose
// environment that our own config loader accepts in production, with the MariaDB settings the tests use.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../src/config.ts';

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions, with continuation lines joined and comments dropped. */
function instructions(dockerfile: string): Instruction[] {
  return dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [keyword, ...rest] = line.split(/\s+/);
      return { keyword: (keyword as string).toUpperCase(), args: rest.join(' ') };
    });
}

describe('Dockerfile', () => {
  const all = instructions(read('Dockerfile'));
  const stages = all.reduce<Instruction[][]>((list, instruction) => {
    if (instruction.keyword === 'FROM') list.push([]);
    list.at(-1)?.push(instruction);
    return list;
  }, []);
  const runtime = stages.at(-1) ?? [];
  const find = (keyword: string, stage = runtime) => stage.filter((i) => i.keyword === keyword);

  it('is multi-stage, every stage on Node 24', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage[0]?.args).toMatch(/^node:24[-.\w]*(\s+AS\s+\w+)?$/i);
  });

  it('installs with npm ci and ships no dev dependencies', () => {
    const runs = all.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(runs.some((run) => /\bnpm ci\b/.test(run))).toBe(true);
    expect(runs.some((run) => /npm (prune|ci)\b.*--omit=dev/.test(run))).toBe(true);
    // The runtime stage copies node_modules from the stage that pruned them and installs nothing itself.
    expect(find('RUN').some((i) => /\bnpm\b/.test(i.args))).toBe(false);
    expect(find('COPY').some((i) => /--from=\w+.*node_modules/.test(i.args))).toBe(true);
  });

  it('runs as a non-root user, in production mode, on port 4000', () => {
    const users = find('USER').map((i) => i.args);
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
    expect(
      find('ENV')
        .map((i) => i.args)
        .join(' '),
    ).toMatch(/NODE_ENV=production/);
    expect(find('EXPOSE').map((i) => i.args)).toContain('4000');
  });

  it('checks health on /readyz and starts src/main.ts, which migrates before serving', () => {
    const health = find('HEALTHCHECK').map((i) => i.args);
    expect(health).toHaveLength(1);
    expect(health[0]).toMatch(/CMD .*http:\/\/127\.0\.0\.1:4000\/readyz/);
    const cmd = find('CMD').at(-1)?.args;
    expect(JSON.parse(cmd as string)).toEqual(['node', 'src/main.ts']);
    // main.ts builds the app with the default `migrate: true`.
    expect(read('src/main.ts')).toMatch(/createApp\(config\)/);
  });

  it('keeps secrets, data and local installs out of the build context', () => {
    const ignored = read('.dockerignore').split('\n');
    for (const entry of ['node_modules', 'data', '.env', '.git', 'secrets', '*.pem']) expect(ignored).toContain(entry);
  });
});

describe('compose.yaml', () => {
  const compose = parseYaml(read('compose.yaml')) as {
    services: Record<string, any>;
    secrets?: Record<string, { file: string }>;
  };
  const auth = compose.services.auth;
  const environment = auth.environment as Record<string, string>;
  const configSource = read('src/config.ts');

  it('runs the service on MySQL 8 and Redis 7, started only once they are healthy', () => {
    expect(compose.services.mysql.image).toMatch(/^mysql:8(\.|$)/);
    expect(compose.services.redis.image).toMatch(/^redis:7(\.|-|$)/);
    expect(auth.depends_on).toEqual({
      mysql: { condition: 'service_healthy' },
      redis: { condition: 'service_healthy' },
    });
    expect(compose.services.mysql.healthcheck.test).toBeDefined();
    expect(compose.services.redis.healthcheck.test).toBeDefined();
  });

  it('gives MySQL the character set and collation the test suite runs MariaDB with', () => {
    const testServer = read('tools/services.ts');
    for (const flag of ['--character-set-server=utf8mb4', '--collation-server=utf8mb4_unicode_ci']) {
      expect(testServer).toContain(flag);
      expect(compose.services.mysql.command).toContain(flag);
    }
    // The service's database and user are the ones MySQL creates.
    const url = new URL(environment.DATABASE_URL as string);
    expect(url.pathname.slice(1)).toBe(compose.services.mysql.environment.MYSQL_DATABASE);
    expect(decodeURIComponent(url.username)).toBe(compose.services.mysql.environment.MYSQL_USER);
    expect(decodeURIComponent(url.password)).toBe(compose.services.mysql.environment.MYSQL_PASSWORD);
  });

  it('sets only variables that src/config.ts reads', () => {
    for (const name of Object.keys(environment)) expect(configSource).toMatch(new RegExp(`\\b${name}:`));
  });

  it('is an environment the config loader accepts in production (the image sets NODE_ENV)', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const secretPath = `/run/secrets/${auth.secrets[0]}`;
    const mfaKey = Buffer.alloc(32, 9).toString('base64');
    const config = loadConfig({ NODE_ENV: 'production', PORT: '4000', ...environment }, (path) => {
      if (path === '/run/secrets/mfa_encryption_key') return `${mfaKey}\n`;
      if (path !== secretPath) throw new Error(`unexpected file ${path}`);
      return pem;
    });
    expect(config.mfaEncryptionKey).toEqual(Buffer.alloc(32, 9));
    expect(compose.secrets?.mfa_encryption_key?.file).toBeDefined();
    expect(environment.JWT_PRIVATE_KEY_FILE).toBe(secretPath);
    expect(compose.secrets?.[auth.secrets[0]]?.file).toBeDefined();
    expect(config.database).toMatchObject({ dialect: 'mysql', host: 'mysql', port: 3306, dbName: 'auth' });
    expect(config.redisUrl).toBe('redis://redis:6379');
    expect(config.jwt.privateKey).toBe(pem);
    expect(config.graphiql).toBe(false);
    expect(auth.ports).toContain('4000:4000');
  });
});
