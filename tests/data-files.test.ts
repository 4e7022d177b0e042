// Files the service creates under DATA_DIR (SQLite database and its WAL files, the development key, the
// development outbox) are 0600 and its folders 0700, whatever the umask.
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.ts';
import { registerUser } from './support/graphql.ts';

const modeOf = (path: string) => statSync(path).mode & 0o777;

describe('data files', () => {
  let t: TestApp;
  let dataDir: string;
  const umask = process.umask();

  beforeAll(async () => {
    // The most permissive umask: nothing the service creates may rely on it.
    process.umask(0);
    const probe = await startTestApp();
    dataDir = join(probe.dir, 'nested', 'data');
    await probe.close();
    t = await startTestApp({ env: { DATA_DIR: dataDir, DATABASE_URL: '' } });
  });
  afterAll(async () => {
    process.umask(umask);
    await t?.close();
  });

  it('creates the data folder 0700 and the SQLite database with its WAL files 0600', async () => {
    const user = await registerUser(t.gql);
    expect(user.user.id).toBeTruthy();
    expect(modeOf(dataDir)).toBe(0o700);
    const files = readdirSync(dataDir).filter((name) => name.startsWith('auth.sqlite'));
    expect(files).toEqual(expect.arrayContaining(['auth.sqlite', 'auth.sqlite-wal', 'auth.sqlite-shm']));
    for (const name of files) expect([name, modeOf(join(dataDir, name))]).toEqual([name, 0o600]);
  });

  it('keeps the development signing key 0600', () => {
    const keys = readdirSync(dataDir).filter((name) => name.startsWith('dev-signing-key'));
    expect(keys).toHaveLength(1);
    expect(modeOf(join(dataDir, keys[0] as string))).toBe(0o600);
  });

  it('writes the development outbox 0700 with messages 0600', async () => {
    const user = await registerUser(t.gql);
    const response = await t.gql('mutation($e: String!) { requestPasswordReset(email: $e) }', { e: user.user.email });
    expect(response.data).toEqual({ requestPasswordReset: true });
    const outbox = join(dataDir, 'mail');
    await expect.poll(() => readdirSync(outbox, { withFileTypes: true }).length, { timeout: 5000 }).toBeGreaterThan(0);
    expect(modeOf(outbox)).toBe(0o700);
    for (const name of readdirSync(outbox)) expect(modeOf(join(outbox, name))).toBe(0o600);
  });

  it('takes group and other access away from a development key an older version left readable', async () => {
    const older = join(dataDir, '..', 'older');
    mkdirSync(older, { recursive: true });
    const key = join(older, 'dev-signing-key.eddsa.pem');
    writeFileSync(key, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o644,
    });
    chmodSync(key, 0o644);
    const restarted = await startTestApp({ env: { DATA_DIR: older } });
    try {
      expect(modeOf(key)).toBe(0o600);
    } finally {
      await restarted.close();
    }
  });
});
