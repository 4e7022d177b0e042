// What an operator reads: a mail that cannot be sent (the SMTP server refusing connections) answers a clear
// error where the caller waits for it, is logged with its cause and counted; /metrics names the build and the
// database pool. SQLite and MariaDB; a real SMTP capture server, stopped.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../src/log.ts';
import { dialects, startTestApp, type TestApp } from './support/app.ts';
import { type Gql, graphqlClient, registerUser, uniqueEmail } from './support/graphql.ts';
import { scrapeMetrics } from './support/metrics.ts';
import { startSmtpServer } from './support/smtp.ts';

describe.each(dialects())('mail that cannot be sent (%s)', (dialect) => {
  let t: TestApp;
  let gql: Gql;
  const lines: string[] = [];
  const entries = () => lines.map((line) => JSON.parse(line) as Record<string, any>);
  const failures = () => entries().filter((entry) => entry.msg === 'mail could not be sent');

  beforeAll(async () => {
    // A real SMTP server, stopped: its port now refuses connections.
    const smtp = await startSmtpServer();
    await smtp.close();
    const stream = new Writable({
      write(chunk, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    t = await startTestApp({
      dialect,
      logger: createLogger({ logLevel: 'info' }, stream),
      env: { SMTP_URL: smtp.url, LOG_LEVEL: 'info' },
    });
    gql = graphqlClient(t.url);
  });
  afterAll(() => t?.close());

  it('answers requestEmailVerification with MAIL_DELIVERY_FAILED, logs the cause without the code, and counts it', async () => {
    const email = uniqueEmail('verify');
    const user = await registerUser(gql, { email });
    lines.length = 0;
    const result = await gql('mutation { requestEmailVerification }', {}, { token: user.accessToken });
    expect(result.data).toBeNull();
    expect(result.errors).toEqual([
      {
        message: 'The verification mail could not be sent. Try again later.',
        path: ['requestEmailVerification'],
        locations: [{ line: 1, column: 12 }],
        extensions: { code: 'MAIL_DELIVERY_FAILED' },
      },
    ]);
    const [failure] = failures();
    expect(failures()).toHaveLength(1);
    expect(failure?.level).toBe(50);
    expect(failure?.mail).toEqual({ kind: 'email-verification' });
    expect(failure?.err.code).toBe('ESOCKET');
    expect(failure?.err.message).toMatch(/ECONNREFUSED/);
    // Neither the recipient nor the mail (whose body holds the code) is in the line: its kind says what it was.
    expect(Object.keys(failure ?? {}).sort()).toEqual(['err', 'hostname', 'level', 'mail', 'msg', 'pid', 'time']);
    expect(JSON.stringify(failure)).not.toContain(email);
    expect(JSON.stringify(entries())).not.toContain(user.accessToken);
    expect((await scrapeMetrics(t.url)).value('auth_mail_failures_total', { kind: 'email-verification' })).toBe(1);
    // Nothing unexpected: the answer is the stable code, not the masked "Unexpected error.".
    expect(entries().filter((entry) => entry.msg === 'unexpected error')).toEqual([]);
  });

  it('still answers requestPasswordReset true (known and unknown addresses alike), and logs and counts the failure', async () => {
    const email = uniqueEmail('reset');
    await registerUser(gql, { email });
    lines.length = 0;
    const known = await gql('mutation($e: String!) { requestPasswordReset(email: $e) }', { e: email });
    const unknown = await gql('mutation($e: String!) { requestPasswordReset(email: $e) }', {
      e: uniqueEmail('nobody'),
    });
    expect(known).toMatchObject({ data: { requestPasswordReset: true } });
    expect(unknown).toMatchObject({ data: { requestPasswordReset: true } });
    expect(known.errors).toBeUndefined();
    // Sent after the answer: wait for the failure to be reported.
    await vi.waitFor(() => expect(failures()).toHaveLength(1), { timeout: 15_000 });
    expect(failures()[0]?.mail).toEqual({ kind: 'password-reset' });
    expect(failures()[0]?.err.code).toBe('ESOCKET');
    expect((await scrapeMetrics(t.url)).value('auth_mail_failures_total', { kind: 'password-reset' })).toBe(1);
  });
});

describe.each(dialects())('/metrics for operators (%s)', (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ dialect });
  });
  afterAll(() => t?.close());

  it('names the build: the service version and Node.js version as labels of a gauge of 1', async () => {
    const { version } = (await import('../package.json', { with: { type: 'json' } })).default as { version: string };
    const scrape = await scrapeMetrics(t.url);
    expect(scrape.types.get('auth_build_info')).toBe('gauge');
    expect(scrape.samples.filter((sample) => sample.name === 'auth_build_info')).toEqual([
      { name: 'auth_build_info', labels: { version, node_version: process.versions.node }, value: 1 },
    ]);
  });

  it(dialect === 'mysql' ? "reports the MariaDB pool's figures" : 'has no pool figures on SQLite', async () => {
    const scrape = await scrapeMetrics(t.url);
    if (dialect === 'sqlite') {
      expect(scrape.samples.filter((sample) => sample.name.startsWith('auth_db_pool_'))).toEqual([]);
      return;
    }
    expect(scrape.value('auth_db_pool_connections_max')).toBe(10);
    expect(scrape.value('auth_db_pool_connections_open')).toBeGreaterThanOrEqual(1);
    expect(scrape.value('auth_db_pool_connections_idle')).toBeLessThanOrEqual(
      scrape.value('auth_db_pool_connections_open'),
    );
    expect(scrape.value('auth_db_pool_requests_waiting')).toBe(0);
  });
});
