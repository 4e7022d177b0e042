// createTokenVerifier: verifies graphql-auth-server access tokens (RFC 9068) through its JWKS and refuses revoked
// ones as soon as the revocation feed says so; fails closed when the feed has been gone longer than maxStaleness.
import { createRemoteJWKSet, customFetch } from 'jose';
import type { VerifiedClaims } from './claims.ts';
import { TokenVerificationError, VERIFICATION_REASONS, type VerificationReason } from './errors.ts';
import { RevocationFeed } from './feed.ts';
import { RevocationList } from './revocations.ts';
import { checkAlgorithms, createClaimsVerifier } from './verify-token.ts';

/** Options of {@link createTokenVerifier}. Durations are milliseconds. */
export interface TokenVerifierOptions {
  /** The server's `ISSUER`: the `iss` every token must carry. */
  readonly issuer: string;
  /** This service's audience (the `aud` a token must include); several are accepted as an array. */
  readonly audience: string | readonly string[];
  /** The server's GraphQL endpoint, e.g. `https://auth.example.com/graphql` (the feed connects there by WebSocket). */
  readonly graphqlUrl: string;
  /** A CONFIDENTIAL client of the server that holds the `sessions:feed` scope. */
  readonly clientId: string;
  /** Its secret (sent only to the token endpoint, with HTTP Basic authentication). */
  readonly clientSecret: string;
  /** How long the feed may be disconnected before every `verify` fails closed. Default 30_000. */
  readonly maxStaleness?: number;
  /** Default: `/.well-known/jwks.json` at the origin of `graphqlUrl`. */
  readonly jwksUrl?: string;
  /** The client-credentials token endpoint. Default: `/oauth/token` at the origin of `graphqlUrl`. */
  readonly tokenUrl?: string;
  /** Accepted JWS algorithms (asymmetric only; `none` and HS* are refused). Default `['EdDSA']`. */
  readonly algorithms?: readonly string[];
  /** Clock skew allowed on `exp` and `iat`. Default 5_000. */
  readonly clockTolerance?: number;
  /** A fetch implementation (for the JWKS and the token endpoint). Default: the global `fetch`. */
  readonly fetch?: typeof globalThis.fetch;
  /** A WebSocket constructor (e.g. the `ws` package's) where no global `WebSocket` exists (Node < 22). */
  readonly webSocketImpl?: unknown;
}

/** Counters and gauges of a verifier, as plain data to export to any metrics system. */
export interface VerifierStatus {
  /** Connected to the feed with the revocation list read since the connection opened. */
  readonly connected: boolean;
  /** Milliseconds since revocations were last known to be current (0 while connected). */
  readonly stalenessMs: number;
  /** Tokens refused since the verifier started, by reason (every reason present, 0 when none). */
  readonly refusals: Readonly<Record<VerificationReason, number>>;
  /** Tokens accepted since the verifier started. */
  readonly verified: number;
  /** Sessions and clients currently held revoked. */
  readonly revoked: { readonly sessions: number; readonly clients: number };
  /** Why the feed last failed to connect (no secret ever), while it is not connected. */
  readonly lastError?: string;
}

/** A token verifier; `close()` it when the service shuts down. */
export interface TokenVerifier {
  /**
   * Resolves to the claims of a valid, unrevoked token. Rejects with a {@link TokenVerificationError} (`code`
   * `'UNAUTHENTICATED'`, `reason` INVALID_TOKEN, TOKEN_EXPIRED, SESSION_REVOKED, CLIENT_DISABLED or
   * REVOCATION_FEED_STALE). Before the first revocation list is read it waits for it, at most `maxStaleness`.
   */
  verify(token: string): Promise<VerifiedClaims>;
  /** The verifier's counters and gauges now. */
  status(): VerifierStatus;
  /** Ends the feed's socket and timers; afterwards every `verify` rejects with REVOCATION_FEED_STALE. */
  close(): void;
}

/** Counts outcomes for `status()`; shared by the real verifier and the testing one. */
export function countOutcomes(verify: (token: string) => Promise<VerifiedClaims>) {
  const refusals = Object.fromEntries(VERIFICATION_REASONS.map((reason) => [reason, 0])) as Record<
    VerificationReason,
    number
  >;
  const counts = { verified: 0, refusals };
  const counted = async (token: string) => {
    try {
      const claims = await verify(token);
      counts.verified++;
      return claims;
    } catch (error) {
      if (error instanceof TokenVerificationError) refusals[error.reason]++;
      throw error;
    }
  };
  return { verify: counted, counts };
}

/**
 * Verifies graphql-auth-server access tokens (RFC 9068) with the server's JWKS and its revocation feed. The feed
 * authenticates with a client-credentials token (RFC 6749 §4.4) that the verifier fetches and renews itself.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  for (const name of ['issuer', 'graphqlUrl', 'clientId', 'clientSecret'] as const)
    if (typeof options[name] !== 'string' || options[name].length === 0)
      throw new TypeError(`${name}: a non-empty string is required`);
  const maxStaleness = options.maxStaleness ?? 30_000;
  const clockToleranceMs = options.clockTolerance ?? 5_000;
  if (!(maxStaleness >= 0) || !(clockToleranceMs >= 0))
    throw new TypeError('maxStaleness and clockTolerance are milliseconds, at least 0');
  const algorithms = checkAlgorithms(options.algorithms ?? ['EdDSA']);
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const origin = new URL(options.graphqlUrl).origin;
  const now = () => Date.now();
  const list = new RevocationList(now, clockToleranceMs);
  const feed = new RevocationFeed(
    {
      graphqlUrl: options.graphqlUrl,
      tokenUrl: options.tokenUrl ?? `${origin}/oauth/token`,
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      fetch: fetchImpl,
      webSocketImpl: options.webSocketImpl,
      now,
    },
    list,
  );
  const getKey = createRemoteJWKSet(new URL(options.jwksUrl ?? `${origin}/.well-known/jwks.json`), {
    [customFetch]: (url, init) => fetchImpl(url, init),
  });

  const stale = () => new TokenVerificationError('REVOCATION_FEED_STALE');
  // Fail closed: the revocations must be current (or stale for no longer than maxStaleness) to decide.
  const ready = (): Promise<void> | undefined => {
    if (feed.live) return undefined;
    if (feed.closed) return Promise.reject(stale());
    const staleness = feed.stalenessMs();
    if (staleness > maxStaleness) return Promise.reject(stale());
    if (feed.everLive) return undefined;
    return feed.whenLive(maxStaleness - staleness).then(() => {
      if (!feed.live) throw stale();
    });
  };

  const { verify, counts } = countOutcomes(
    createClaimsVerifier({
      getKey,
      issuer: options.issuer,
      audience: options.audience,
      algorithms,
      clockToleranceMs,
      now,
      refusal: (claims) => list.refusal(claims),
      ready,
    }),
  );

  return {
    verify,
    status: () => ({
      connected: feed.live,
      stalenessMs: feed.stalenessMs(),
      refusals: { ...counts.refusals },
      verified: counts.verified,
      revoked: list.size,
      ...(feed.live || feed.lastError === undefined ? {} : { lastError: feed.lastError }),
    }),
    close: () => feed.close(),
  };
}
