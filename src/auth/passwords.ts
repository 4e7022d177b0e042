// bcrypt hashing, always async (libuv's pool), with a dummy hash so unknown accounts cost the same.
import { randomBytes } from 'node:crypto';
import bcrypt from 'bcrypt';

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /** Compares against `hash`, or against a dummy hash when there is none, so timing tells nothing. */
  verify(password: string, hash: string | null | undefined): Promise<boolean>;
}

export async function createPasswordHasher(cost: number): Promise<PasswordHasher> {
  const dummy = await bcrypt.hash(randomBytes(18).toString('base64'), cost);
  return {
    hash: (password) => bcrypt.hash(password, cost),
    async verify(password, hash) {
      const matches = await bcrypt.compare(password, hash ?? dummy);
      return matches && hash !== null && hash !== undefined;
    },
  };
}
