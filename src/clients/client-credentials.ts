// The client-credentials grant (RFC 6749 §4.4, API.md "Client credentials"): authenticates a CONFIDENTIAL client by
// its secret, against the database row, and issues it a service token for a subset of its declared scopes.
import { LockMode } from '@mikro-orm/core';
import { audit, type RequestMeta } from '../audit/audit.ts';
import type { Clock } from '../clock.ts';
import { Client } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { transactional } from '../db/transaction.ts';
import type { Limiter, LimitOutcome } from '../limits/limiters.ts';
import { ipKey } from '../limits/rate-limits.ts';
import { isApiScopeName, SERVICE_BUILT_IN_SCOPES } from '../tokens/scopes.ts';
import type { AccessTokenSigner } from '../tokens/sign.ts';
import { CLIENT_ID_PATTERN, type ClientRegistry, clientInfoOf, revocationCutoffSeconds } from './registry.ts';
import { clientSecretMatches } from './secret.ts';

/** The error codes of RFC 6749 §5.2, and `temporarily_unavailable` (registered by §4.1.2.1) for a rate limit. */
export type TokenErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'temporarily_unavailable';

const STATUS: Record<TokenErrorCode, number> = {
  invalid_request: 400,
  invalid_client: 401,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  temporarily_unavailable: 429,
};

/**
 * A refused token request, as RFC 6749 §5.2 answers it. Its own family rather than an AuthError: these codes are
 * the OAuth vocabulary of an HTTP endpoint and never become GraphQL errors. The description is always one of
 * ours, never a value from the request.
 */
export class TokenRequestError extends Error {
  override name = 'TokenRequestError';
  readonly code: TokenErrorCode;
  readonly status: number;
  /** Seconds, for `temporarily_unavailable` (Retry-After). */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: TokenErrorCode, description: string, retryAfterSeconds?: number) {
    super(description);
    this.code = code;
    this.status = STATUS[code];
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** How the client authenticated (RFC 6749 §2.3.1), already decoded. */
export interface ClientAuthentication {
  readonly method: 'client_secret_basic' | 'client_secret_post';
  readonly clientId: string;
  readonly secret: string;
}

export interface TokenRequest {
  /** `grant_type`; undefined when absent (or empty, which RFC 6749 §3.1 treats as absent). */
  readonly grantType: string | undefined;
  /** `scope` as sent; undefined when absent or empty. */
  readonly scope: string | undefined;
  /** Undefined when the request carried no client authentication at all. */
  readonly authentication: ClientAuthentication | undefined;
  readonly meta: RequestMeta;
}

export interface IssuedToken {
  readonly accessToken: string;
  /** Seconds until the token expires. */
  readonly expiresIn: number;
  /** The granted scopes, space-separated. */
  readonly scope: string;
}

export interface ClientCredentialsDeps {
  readonly fork: () => Em;
  readonly clients: ClientRegistry;
  readonly sign: AccessTokenSigner;
  readonly clock: Clock;
  /** Our own API's audience (AUDIENCE), added to a token that carries a built-in scope. */
  readonly audience: string;
  readonly limits: { readonly perClient: Limiter; readonly perIp: Limiter };
}

/** The longest client id kept in an audit row of a failed authentication: the column of a real id is 64. */
const AUDITED_ID_LENGTH = 64;

const invalidClient = () => new TokenRequestError('invalid_client', 'Client authentication failed');

const rateLimited = (retryAfterMs: number) => {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new TokenRequestError('temporarily_unavailable', 'Too many token requests; try again later', seconds);
};

/** The scopes a client's service tokens may carry: its API scopes and the built-in ones a service may hold. */
const grantable = (declared: readonly string[]): string[] =>
  // Fail closed: a built-in scope outside SERVICE_BUILT_IN_SCOPES is never granted, whatever the row says.
  [...new Set(declared)].filter((scope) => isApiScopeName(scope) || SERVICE_BUILT_IN_SCOPES.includes(scope));

export class ClientCredentialsGrant {
  readonly #deps: ClientCredentialsDeps;

  constructor(deps: ClientCredentialsDeps) {
    this.#deps = deps;
  }

  /**
   * Counts one token request from the caller's IP, before any other work: every request counts, failed
   * authentications included, so guessing secrets from one address is bounded. Throws `temporarily_unavailable`
   * over the limit.
   */
  async admit(meta: RequestMeta): Promise<void> {
    const outcome = await this.#deps.limits.perIp.consume(ipKey(meta.ipAddress));
    if (!outcome.allowed) throw rateLimited(outcome.retryAfterMs);
  }

  /**
   * Issues a service token for an authenticated CONFIDENTIAL client, or throws a TokenRequestError. Unknown
   * client, wrong secret, PUBLIC client and disabled client are one answer (`invalid_client`). The per-client
   * limit counts only requests that authenticated: an attacker who guesses secrets with a client's id spends its
   * own IP's allowance, never the client's.
   */
  async exchange(request: TokenRequest): Promise<IssuedToken> {
    if (request.grantType === undefined) throw new TokenRequestError('invalid_request', 'grant_type is required');
    if (request.grantType !== 'client_credentials') {
      throw new TokenRequestError('unsupported_grant_type', 'Only client_credentials is supported');
    }
    const authentication = request.authentication;
    if (!authentication) throw invalidClient();
    const { fork, clients, sign, clock, audience, limits } = this.#deps;
    // Counted at most once, even when a transient conflict runs the transaction again.
    let counted: Promise<LimitOutcome> | undefined;

    const outcome = await transactional(fork(), async (tx) => {
      // The row, not the registry (which holds no secret), locked until the token is issued: a secret rotation
      // (or disabling) that commits while this runs waits for it, so the token's iat is before the rotation's
      // cutoff and the rotation refuses it; or this runs after, and sees the new row.
      const row = CLIENT_ID_PATTERN.test(authentication.clientId)
        ? await tx.findOne(
            Client,
            { id: authentication.clientId },
            { lockMode: LockMode.PESSIMISTIC_WRITE, disableIdentityMap: true },
          )
        : null;
      // Compared whatever the row is, so an unknown or PUBLIC client takes the same path as a wrong secret.
      const secretMatches = clientSecretMatches(row?.secretHash, authentication.secret);
      if (row?.type !== 'CONFIDENTIAL' || row.disabled || !secretMatches) {
        audit(
          tx,
          request.meta,
          {
            type: 'CLIENT_AUTHENTICATION_FAILED',
            detail: { clientId: authentication.clientId.slice(0, AUDITED_ID_LENGTH), method: authentication.method },
          },
          new Date(clock.now()),
        );
        return { refused: invalidClient() } as const;
      }
      counted ??= limits.perClient.consume(row.id);
      const limit = await counted;
      if (!limit.allowed) return { refused: rateLimited(limit.retryAfterMs) } as const;

      const client = clientInfoOf(row);
      // The locked row is the newest state there is: this instance's copy takes it, so that the token it is about
      // to issue verifies here too when the client was made (or enabled) where no bus reached this instance (the
      // admin CLI without Redis), instead of being refused as an unknown client's (CLIENT_DISABLED) until a restart.
      clients.apply(client);
      const allowed = grantable(client.scopes);
      let scopes = allowed;
      if (request.scope !== undefined) {
        const asked = [...new Set(request.scope.split(' ').filter((scope) => scope.length > 0))];
        if (asked.length === 0 || asked.some((scope) => !allowed.includes(scope))) {
          return { refused: new TokenRequestError('invalid_scope', 'The requested scope is not allowed') } as const;
        }
        // In the client's order, so one request's answer reads the same however the scopes were listed.
        scopes = allowed.filter((scope) => asked.includes(scope));
      }
      // This API is an audience only of tokens that can do something on it (API.md "Clients").
      const builtIn = scopes.some((scope) => SERVICE_BUILT_IN_SCOPES.includes(scope));
      const audiences = [...clients.audiencesOf(client), ...(builtIn ? [audience] : [])];
      // Within the second of a client-wide revocation, wait for the next one rather than sign an iat ahead of the
      // clock: a token dated ahead would survive a second revocation made in that same second (its cutoff is the
      // same whole second). Only in the second after a rotation or a disabling, so at most once in a long while.
      const notBefore = revocationCutoffSeconds(client.tokensRevokedAt);
      // Bounded: a revocation dated further ahead (another instance's clock) is left to notBefore.
      const wait = Math.min(notBefore * 1000 - clock.now(), 1000);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const signed = await sign.service({ clientId: client.id, audiences, scopes, notBefore });
      audit(
        tx,
        request.meta,
        { type: 'CLIENT_TOKEN_ISSUED', detail: { clientId: client.id, scope: signed.scope } },
        new Date(clock.now()),
      );
      return { issued: signed } as const;
    });

    if ('refused' in outcome) throw outcome.refused;
    const { token, expiresAt, scope } = outcome.issued;
    // RFC 6749 §5.1: the lifetime from the time the response is generated.
    return {
      accessToken: token,
      expiresIn: Math.max(0, Math.round((expiresAt.getTime() - clock.now()) / 1000)),
      scope,
    };
  }
}
