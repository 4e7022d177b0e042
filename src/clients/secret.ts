// Client secrets (API.md "Clients"): 256 random bits in base64url, shown once, stored only as a SHA-256 hash
// (a secret of full entropy needs no slow hash), compared in constant time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A new client secret: 43 base64url characters (256 bits), safe in a form body or a Basic header unencoded. */
export const newClientSecret = (): string => randomBytes(32).toString('base64url');

/** SHA-256 of the secret, hex: what `clients.secret_hash` holds. */
export const hashClientSecret = (secret: string): string => createHash('sha256').update(secret, 'utf8').digest('hex');

/** Whether `presented` is the secret whose hash is `storedHash`, in time independent of where they differ. */
export function clientSecretMatches(storedHash: string | null | undefined, presented: string): boolean {
  // Hashing first gives equal lengths whatever was presented; a client without a secret matches nothing.
  const actual = Buffer.from(hashClientSecret(presented), 'hex');
  const expected = Buffer.from(storedHash ?? '0'.repeat(64), 'hex');
  return expected.length === actual.length && timingSafeEqual(expected, actual) && storedHash != null;
}
