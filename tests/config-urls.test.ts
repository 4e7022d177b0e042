// URLs with credentials in the configuration (DATABASE_URL, REDIS_URL, SMTP_URL): one that does not parse, or
// whose user, password or path does not %-decode (a lone `%` in a password), is a configuration error naming
// the variable, reported with the others and never quoting the value; before, it ended the start with a
// URIError stack or as "cannot connect" to an invalid URL.
import { describe, expect, it } from 'vitest';
import { cannotConnect, passwordOf } from '../src/cannot-connect.ts';
import { ConfigError, type Env, loadConfig } from '../src/config.ts';

const SECRET = 'S3C%ZZret';

function problems(env: Env): readonly string[] {
  try {
    loadConfig(env, () => {
      throw new Error('no files');
    });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('URLs with credentials', () => {
  it('names each variable whose URL does not parse or decode, all in one go, without the value', () => {
    const found = problems({
      DATABASE_URL: `mysql://app:${SECRET}@db.internal:3306/auth`,
      REDIS_URL: `redis://:${SECRET}@redis.internal:6379`,
      SMTP_URL: `smtp://mailer:${SECRET}@mail.internal:587`,
      BCRYPT_COST: '3',
    });
    expect(found).toEqual([
      'REDIS_URL: expected redis://[user:pass@]host:port[/db] or rediss://…',
      'BCRYPT_COST: expected an integer from 4 to 31',
      'SMTP_URL: expected smtp://[user:pass@]host[:port] or smtps://…',
      'DATABASE_URL: expected mysql://user:pass@host:port/db (special characters %-encoded)',
    ]);
    expect(found.join('\n')).not.toContain('S3C');
  });

  it('refuses a REDIS_URL that is no URL at all (a port that is not a number)', () => {
    expect(problems({ REDIS_URL: 'redis://:pw@redis.internal:port' })).toEqual([
      'REDIS_URL: expected redis://[user:pass@]host:port[/db] or rediss://…',
    ]);
  });

  it('still accepts %-encoded credentials, and redacts both spellings of them', () => {
    const config = loadConfig(
      { DATABASE_URL: 'mysql://app:p%40ss%25w@db.internal/auth', REDIS_URL: 'redis://:r%40s@redis.internal:6379' },
      () => '',
    );
    expect(config.database).toMatchObject({ dialect: 'mysql', user: 'app', password: 'p@ss%w', dbName: 'auth' });
    expect(passwordOf('redis://:r%40s@redis.internal:6379')).toEqual(['r%40s', 'r@s']);
    // A password that does not decode is still redacted as written, rather than throwing.
    expect(passwordOf(`redis://:${SECRET}@h:6379`)).toEqual([SECRET]);
    expect(
      cannotConnect('REDIS_URL', new Error(`WRONGPASS ${SECRET}`), passwordOf(`redis://:${SECRET}@h:1`)).message,
    ).toBe('REDIS_URL: cannot connect: WRONGPASS [redacted]');
  });
});
