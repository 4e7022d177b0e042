// The MFA key (MFA_ENCRYPTION_KEY): from configuration, or outside production generated once and kept under
// DATA_DIR (0600), like the development signing key, so that secrets stored in development survive a restart.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.ts';
import { ensurePrivateDir, ensurePrivateFile, PRIVATE_FILE_MODE } from '../private-files.ts';

export const MFA_KEY_BYTES = 32;

/** The configured key, or outside production the development key; throws in production without one. */
export function loadMfaKey(config: Pick<Config, 'mfaEncryptionKey' | 'dataDir' | 'env'>): Buffer {
  if (config.mfaEncryptionKey) return config.mfaEncryptionKey;
  // Never a key that lives in one instance's data folder in production: secrets encrypted with it would be lost
  // with the folder, and unreadable to the other instances.
  if (config.env === 'production') {
    throw new Error('MFA_ENCRYPTION_KEY is not set: TOTP and recovery codes are unavailable until it is');
  }
  const path = join(config.dataDir, 'dev-mfa-key');
  if (existsSync(path)) {
    ensurePrivateFile(path);
    const key = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64url');
    if (key.length !== MFA_KEY_BYTES) throw new Error(`${path}: not a ${MFA_KEY_BYTES}-byte key`);
    return key;
  }
  ensurePrivateDir(config.dataDir);
  const key = randomBytes(MFA_KEY_BYTES);
  writeFileSync(path, key.toString('base64url'), { mode: PRIVATE_FILE_MODE });
  return key;
}
