// Files the service creates under DATA_DIR (the SQLite database, the development key, the development outbox)
// hold secrets or personal data: folders 0700, files 0600, whatever the process's umask.
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates `dir` (and missing parents) as 0700; an existing folder is left as it is (it may be shared, e.g. /tmp). */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/** The async ensurePrivateDir, for request paths. */
export async function ensurePrivateDirAsync(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/**
 * Makes sure `path` exists with mode 0600, creating it empty if needed and taking group and other access away
 * from one that exists. SQLite gives the -wal and -shm files it creates the database file's mode.
 */
export function ensurePrivateFile(path: string): void {
  closeSync(openSync(path, 'a', PRIVATE_FILE_MODE));
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, PRIVATE_FILE_MODE);
}
