// Checks one token's signature and claims (RFC 9068 as graphql-auth-server issues it) and caches the result by the
// token's exact text, as the server's own verifier does; expiry and revocation are checked again on every call.
import { type JWTVerifyGetKey, jwtVerify } from 'jose';
import type { ServiceClaims, UserClaims, VerifiedClaims } from './claims.ts';
import { TokenVerificationError, type VerificationReason } from './errors.ts';

/** Algorithms a JWKS can verify: asymmetric only, so a public key can never be used as an HMAC secret. */
const ASYMMETRIC = /^(EdDSA|Ed25519|ES(256|384|512)|RS(256|384|512)|PS(256|384|512))$/;

/** How many verified tokens are remembered (a few MB at most). */
const CACHE_SIZE = 10_000;

/** What {@link createClaimsVerifier} checks a token against. Durations are milliseconds. */
export interface ClaimsCheck {
  readonly getKey: JWTVerifyGetKey;
  readonly issuer: string;
  readonly audience: string | readonly string[];
  readonly algorithms: readonly string[];
  readonly clockToleranceMs: number;
  readonly now: () => number;
  /** A revocation that refuses claims whose signature and content are valid. */
  readonly refusal: (claims: VerifiedClaims) => VerificationReason | undefined;
  /** Resolves when revocations are current enough to decide; rejects (REVOCATION_FEED_STALE) otherwise. */
  readonly ready: () => Promise<void> | undefined;
}

/** Refuses algorithm lists that could be confused (none, HMAC with a public key, a mix). */
export function checkAlgorithms(algorithms: readonly string[]): readonly string[] {
  if (algorithms.length === 0) throw new TypeError('algorithms: at least one algorithm is required');
  for (const alg of algorithms)
    if (!ASYMMETRIC.test(alg))
      throw new TypeError(
        `algorithms: ${JSON.stringify(alg)} is not an asymmetric JWS algorithm (none and HS* are refused)`,
      );
  return Object.freeze([...algorithms]);
}

const isStringArray = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((item) => typeof item === 'string');

/** Builds `verify(token)`: resolves to the claims, rejects with a TokenVerificationError. */
export function createClaimsVerifier(check: ClaimsCheck): (token: string) => Promise<VerifiedClaims> {
  const toleranceMs = check.clockToleranceMs;
  const options = {
    algorithms: [...check.algorithms],
    issuer: check.issuer,
    audience: typeof check.audience === 'string' ? check.audience : [...check.audience],
    typ: 'at+jwt',
    clockTolerance: toleranceMs / 1000,
    requiredClaims: ['sub', 'client_id', 'jti', 'iat', 'exp', 'scope'],
  };
  const verified = new Map<string, VerifiedClaims>();
  // The tokens in the order they were remembered, a ring of CACHE_SIZE slots: past the limit the oldest goes. Not
  // the Map's first key: deletions leave holes at a Map's front that finding its first key walks over (thousands
  // of them here, several microseconds a call); and no cache library, to keep the dependencies to jose and
  // graphql-ws (API.md).
  const order: string[] = [];
  let next = 0;

  const decide = async (claims: VerifiedClaims): Promise<VerifiedClaims> => {
    await check.ready();
    const refused = check.refusal(claims);
    if (refused) throw new TokenVerificationError(refused);
    return claims;
  };

  return async (token) => {
    if (typeof token !== 'string' || token.length === 0) throw new TokenVerificationError('INVALID_TOKEN');
    const known = verified.get(token);
    if (known) {
      if (known.exp * 1000 + toleranceMs <= check.now()) {
        verified.delete(token);
        throw new TokenVerificationError('TOKEN_EXPIRED');
      }
      return decide(known);
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, check.getKey, { ...options, currentDate: new Date(check.now()) }));
    } catch (error) {
      const expired = (error as { code?: string }).code === 'ERR_JWT_EXPIRED';
      throw new TokenVerificationError(expired ? 'TOKEN_EXPIRED' : 'INVALID_TOKEN', { cause: error });
    }
    const { sub, sid, roles, scope, client_id: clientId, iat, exp } = payload;
    const service = sid === undefined && roles === undefined;
    if (
      typeof sub !== 'string' ||
      typeof clientId !== 'string' ||
      typeof scope !== 'string' ||
      typeof iat !== 'number' ||
      typeof exp !== 'number' ||
      // Not issued in the future (beyond the tolerance).
      iat * 1000 > check.now() + toleranceMs ||
      // A service token is its client's own (RFC 9068 §2.2 for client credentials); a user's names its session.
      (service ? sub !== clientId : typeof sid !== 'string' || !isStringArray(roles))
    ) {
      throw new TokenVerificationError('INVALID_TOKEN');
    }
    const scopes: ReadonlySet<string> = new Set(scope.split(' ').filter((s) => s.length > 0));
    const claims = service
      ? (Object.freeze({ ...payload, kind: 'service', scopes }) as ServiceClaims)
      : (Object.freeze({
          ...payload,
          kind: 'user',
          roles: Object.freeze([...(roles as string[])]),
          scopes,
        }) as UserClaims);
    // A token verified twice at once (both calls missed) takes one slot, or its older slot would evict it early.
    if (!verified.has(token)) {
      const evicted = order[next];
      if (evicted !== undefined) verified.delete(evicted);
      order[next] = token;
      next = (next + 1) % CACHE_SIZE;
    }
    verified.set(token, claims);
    return decide(claims);
  };
}
