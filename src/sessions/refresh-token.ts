// Opaque refresh tokens: `<session id>.<generation>.<256 random bits>.<tag>`.
// Only a SHA-256 of the current token's secret is stored. The tag, an HMAC under a per-session key, lets us
// recognise a token of an earlier generation as one we really issued, so replaying any spent token is caught
// as reuse while made-up tokens for a known session id are merely invalid (and cannot revoke anything).
import {
  createHash,
  createHmac,
  createSecretKey,
  type KeyObject,
  randomBytes,
  randomUUID,
  timingSafeEqual,
} from 'node:crypto';

const FORMAT =
  /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(0|[1-9][0-9]{0,8})\.([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{22})$/;

export interface RefreshTokenParts {
  readonly sessionId: string;
  readonly generation: number;
  readonly secret: string;
  readonly tag: string;
}

export const newSessionId = (): string => randomUUID();

/** A session's tag key (base64url, 256 bits). */
export const newTokenKey = (): string => randomBytes(32).toString('base64url');

/** A session's tag key as stored (base64url), or as a KeyObject made once from it (cheaper for several tags). */
export type TagKey = string | KeyObject;

/** The KeyObject of a stored tag key: HMAC with a raw key builds one anew for every tag. */
export const tagKeyOf = (key: string): KeyObject => createSecretKey(key, 'base64url');

function tagOf(key: TagKey, sessionId: string, generation: number, secret: string): Buffer {
  return createHmac('sha256', typeof key === 'string' ? tagKeyOf(key) : key)
    .update(`${sessionId}.${generation}.${secret}`)
    .digest()
    .subarray(0, 16);
}

export function newRefreshToken(sessionId: string, generation: number, key: TagKey): { token: string; hash: string } {
  const secret = randomBytes(32).toString('base64url');
  const tag = tagOf(key, sessionId, generation, secret).toString('base64url');
  return { token: `${sessionId}.${generation}.${secret}.${tag}`, hash: hashSecret(secret) };
}

export function parseRefreshToken(token: string): RefreshTokenParts | undefined {
  const match = FORMAT.exec(token);
  if (!match) return undefined;
  const [, sessionId, generation, secret, tag] = match as unknown as [string, string, string, string, string];
  return { sessionId, generation: Number(generation), secret, tag };
}

/** Whether the token was issued by us for this session (any generation). */
export function isGenuine(parts: RefreshTokenParts, key: TagKey): boolean {
  // Compared as text: base64url decoding ignores the last character's spare bits, so bytes would let
  // several spellings of one tag pass.
  const expected = Buffer.from(tagOf(key, parts.sessionId, parts.generation, parts.secret).toString('base64url'));
  const given = Buffer.from(parts.tag);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Constant-time comparison of two hex SHA-256 digests. */
export function sameHash(a: string | null | undefined, b: string): boolean {
  if (typeof a !== 'string' || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}
