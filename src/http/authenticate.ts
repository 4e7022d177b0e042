// Turns an Authorization value into claims: none is anonymous, anything wrong is UNAUTHENTICATED.
import { unauthenticated } from '../errors.ts';
import type { VerifiedClaims } from '../tokens/claims.ts';
import type { AccessTokenVerifier } from '../tokens/verify.ts';

export async function authenticate(
  authorization: string | null | undefined,
  verify: AccessTokenVerifier,
): Promise<VerifiedClaims | null> {
  if (authorization === null || authorization === undefined || authorization === '') return null;
  const match = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/i.exec(authorization.trim());
  if (!match) throw unauthenticated('INVALID_TOKEN');
  return verify(match[1] as string);
}
