// Opaque refresh tokens: `<session id>.<256 random bits>`; only a SHA-256 of the secret part is stored.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

const FORMAT = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;

export interface RefreshTokenParts {
  readonly sessionId: string;
  readonly secret: string;
}

export const newSessionId = (): string => randomUUID();

export function newRefreshToken(sessionId: string): { token: string; hash: string } {
  const secret = randomBytes(32).toString('base64url');
  return { token: `${sessionId}.${secret}`, hash: hashSecret(secret) };
}

export function parseRefreshToken(token: string): RefreshTokenParts | undefined {
  const match = FORMAT.exec(token);
  return match ? { sessionId: match[1] as string, secret: match[2] as string } : undefined;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Constant-time comparison of two hex SHA-256 digests. */
export function sameHash(a: string | null | undefined, b: string): boolean {
  if (typeof a !== 'string' || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}
