// Sessions: open one per sign-in, rotate its refresh token on every use, revoke, list.

import { LockMode } from '@mikro-orm/core';
import { type AuditEntry, audit, auditEvent, type RequestMeta } from '../audit/audit.ts';
import type { Call } from '../call.ts';
import { type ClientInfo, type ClientRegistry, DEFAULT_CLIENT_ID } from '../clients/registry.ts';
import type { Clock } from '../clock.ts';
import { type RevocationReason, type Role, Session, type SessionRow, type UserRow } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { insertSession, lockClientForSignIn, lockUserForSignIn } from '../db/session-opening.ts';
import { findSessionWithUser, rotateRefreshToken } from '../db/session-rotation.ts';
import { transactional } from '../db/transaction.ts';
import { AuthError, badInput, unauthenticated } from '../errors.ts';
import type { RevocationBus, SessionRevokedEvent } from '../events/revocation-bus.ts';
import { enforce, type RateLimits } from '../limits/rate-limits.ts';
import { splitScopes } from '../tokens/scopes.ts';
import type { AccessTokenSigner } from '../tokens/sign.ts';
import {
  hashSecret,
  isGenuine,
  newRefreshToken,
  newSessionId,
  newTokenKey,
  parseRefreshToken,
  sameHash,
  tagKeyOf,
} from './refresh-token.ts';
import { rotate, slidingExpiry } from './rotation.ts';

export interface SessionInfo {
  readonly id: string;
  readonly createdAt: Date;
  readonly lastUsedAt: Date;
  readonly expiresAt: Date;
  readonly userAgent: string | null;
  readonly ipAddress: string | null;
  readonly current: boolean;
}

/** How a session's refresh tokens reach its client: in the answer's body, or only in an HttpOnly cookie. */
export type TokenDelivery = 'BODY' | 'COOKIE';

/** Where a presented refresh token came from: a cookie-bound session's token is taken from the cookie only. */
export type RefreshTokenSource = 'argument' | 'cookie';

export interface IssuedTokens {
  readonly accessToken: string;
  readonly accessTokenExpiresAt: Date;
  /** For the transport alone when `cookieBound`: it goes into the cookie, never into a body. */
  readonly refreshToken: string;
  /** The session's tokens travel only in the HttpOnly cookie (tokenDelivery COOKIE), for its whole life. */
  readonly cookieBound: boolean;
  readonly refreshTokenExpiresAt: Date;
  readonly tokenType: 'Bearer';
  readonly user: UserRow;
  readonly session: SessionInfo;
}

export type Revocation = SessionRevokedEvent;

/** What to revoke: sessions of one user (all, or by id; active ones only), why, and who asked from where. */
export interface RevocationOrder {
  readonly userId: string;
  readonly sessionIds: readonly string[] | 'all';
  readonly reason: RevocationReason;
  readonly meta: RequestMeta;
  /** A session to leave alone (the caller's own, for "all other sessions"). */
  readonly except?: string;
  /**
   * The session of `userId`'s that asks for the revocation (a user's own request): locked by the same statement
   * as the rows revoked, and UNAUTHENTICATED SESSION_REVOKED when it is no longer active, so that a session thrown
   * out while its request ran revokes nothing once that was answered (src/sessions/caller-session.ts). Revoked
   * itself only when it is one of `sessionIds` and not `except`. A request on behalf of another user's session
   * (an admin's) holds that one with holdCallerSession instead.
   */
  readonly askedBy?: string;
}

export interface SessionSettings {
  readonly refreshTokenTtlMs: number;
  readonly sessionMaxAgeMs: number;
  readonly refreshReuseGraceMs: number;
}

/**
 * The `revokedAt` of a revocation, taken once its session rows are locked, as late in the transaction as it can be:
 * the reconciliation of revocations never published (RevokedSessions.loadUnpublished) looks back only
 * RECONCILE_WINDOW_MS from now, so waits for the rows' locks, and for whatever the caller's transaction locked
 * before them (a user row, a client row), must not age it. Taken again when `transactional` runs the
 * transaction again, as revokeIn and revokeByClientIn are run again with it.
 */
const revocationTime = (clock: Clock): Date => new Date(clock.now());

/**
/** Whether a session has ended at `at` (ms since the epoch): its refresh token's expiry has come. */
const hasEnded = (row: { readonly expiresAt: Date }, at: number): boolean => row.expiresAt.getTime() <= at;

/**
 * The locked rows of a revocation still active at its stamp `at`, taken once the rows are locked: its locking read
 * names no time (API.md: an expired session is neither revoked, counted nor announced).
 */
const activeAt = <T extends { readonly expiresAt: Date }>(rows: readonly T[], at: Date): T[] =>
  rows.filter((row) => !hasEnded(row, at.getTime()));

export const rolesOf = (user: Pick<UserRow, 'roles'>): Role[] => user.roles.split(',') as Role[];

/** The user's API scopes that the client declares: what a user token of that client carries (API.md). */
export const grantedApiScopes = (user: Pick<UserRow, 'scopes'>, client: ClientInfo): string[] =>
  splitScopes(user.scopes).filter((scope) => client.scopes.includes(scope));

export const toSessionInfo = (row: SessionRow, currentSessionId: string | undefined): SessionInfo => ({
  id: row.id,
  createdAt: row.createdAt,
  lastUsedAt: row.lastUsedAt,
  expiresAt: row.expiresAt,
  userAgent: row.userAgent ?? null,
  ipAddress: row.ipAddress ?? null,
  current: row.id === currentSessionId,
});

export class Sessions {
  readonly #clock: Clock;
  readonly #sign: AccessTokenSigner;
  readonly #bus: RevocationBus;
  readonly #settings: SessionSettings;
  readonly #limits: Pick<RateLimits, 'refresh'>;
  /** The clients sessions are opened for (every instance's copy of the registry). */
  readonly clients: ClientRegistry;
  readonly #statements: Em;

  /**
   * `statements`: the ORM's root EntityManager, for refresh's own statements (Kysely, outside any transaction of
   * a request), so that a refresh forks no EntityManager of its own unless it must revoke.
   */
  constructor(
    clock: Clock,
    sign: AccessTokenSigner,
    bus: RevocationBus,
    settings: SessionSettings,
    limits: Pick<RateLimits, 'refresh'>,
    clients: ClientRegistry,
    statements: Em,
  ) {
    this.clients = clients;
    this.#statements = statements;
    this.#clock = clock;
    this.#sign = sign;
    this.#bus = bus;
    this.#settings = settings;
    this.#limits = limits;
  }

  /**
   * Creates a session row on `em` (to be flushed by the caller's transaction, which `em` must be) and its first
   * refresh token. ACCOUNT_DISABLED when the account is disabled: read under the user row's lock, which disabling
   * takes before it revokes the user's sessions, so a sign-in racing it either ends before (and its session is
   * revoked with the others) or reads the account disabled; none escapes. `account` says whether the user row is
   * being created by this same transaction ('created': nobody can have disabled it, and a locking read of a row
   * not yet inserted would take a gap lock that deadlocks concurrent registrations on MySQL/MariaDB) or exists.
   * The returned `user` has the roles, scopes and password hash read under that lock ('existing').
   * `clientId`: the client the sign-in names (default `default`); BAD_USER_INPUT (field clientId) when it is
   * unknown or disabled. Flows should check it with `clients.forSignIn` before any credential, too.
   */
  async open(
    em: Em,
    user: UserRow,
    meta: RequestMeta,
    delivery: TokenDelivery,
    account: 'created' | 'existing',
    clientId: string = DEFAULT_CLIENT_ID,
  ): Promise<{ row: SessionRow; refreshToken: string; user: UserRow }> {
    const client = this.clients.forSignIn(clientId);
    let signingIn = user;
    if (account === 'existing') {
      const row = await lockUserForSignIn(em, user.id);
      if (row?.disabled) throw new AuthError('ACCOUNT_DISABLED', 'This account has been disabled');
      // Roles and API scopes as of this lock, not as the flow read them before: a removal committed in between
      // revoked the sessions it found (not this one, not yet there), so the first token must not carry what it removed.
      // The password hash too, for flows that checked a password before: a change or reset committed in between
      // revoked every session, and the caller must refuse a password that no longer holds (login, verifyMfa).
      if (row) signingIn = { ...user, roles: row.roles, scopes: row.scopes, passwordHash: row.passwordHash } as UserRow;
    } else {
      // The user row this transaction creates, written before the session that refers to it.
      await em.flush();
    }
    // The client's row under a shared lock, which disabling it takes exclusively before revoking its sessions: a
    // sign-in racing it either ends first (and its session is revoked with the others) or reads it disabled, even
    // on an instance whose copy of the registry has not heard of it yet.
    const clientRow = await lockClientForSignIn(em, client.id);
    if (!clientRow || clientRow.disabled) throw badInput('clientId', 'Unknown or disabled client');
    const now = new Date(this.#clock.now());
    const id = newSessionId();
    const tagKey = newTokenKey();
    const { token, hash } = newRefreshToken(id, 0, tagKey);
    const maxExpiresAt = new Date(now.getTime() + this.#settings.sessionMaxAgeMs);
    const row = {
      id,
      user,
      refreshTokenHash: hash,
      refreshGeneration: 0,
      refreshTagKey: tagKey,
      rotatedAt: null,
      createdAt: now,
      lastUsedAt: now,
      expiresAt: slidingExpiry(now.getTime(), maxExpiresAt, this.#settings.refreshTokenTtlMs),
      maxExpiresAt,
      userAgent: meta.userAgent,
      ipAddress: meta.ipAddress,
      revokedAt: null,
      revokedReason: null,
      cookieBound: delivery === 'COOKIE',
      clientId: client.id,
    } as unknown as SessionRow;
    await insertSession(em, row);
    return { row, refreshToken: token, user: signingIn };
  }

  /** Signs the access token that goes with a session's new refresh token. */
  async issue(user: UserRow, row: SessionRow, refreshToken: string): Promise<IssuedTokens> {
    const client = this.clients.get(row.clientId);
    // Disabling a client revokes its sessions; this covers a copy of the registry that heard of it first.
    if (!client || client.disabled) throw unauthenticated('CLIENT_DISABLED');
    const access = await this.#sign({
      userId: user.id,
      sessionId: row.id,
      roles: rolesOf(user),
      clientId: client.id,
      audiences: this.clients.audiencesOf(client),
      apiScopes: grantedApiScopes(user, client),
      notAfter: row.expiresAt,
    });
    return {
      accessToken: access.token,
      accessTokenExpiresAt: access.expiresAt,
      refreshToken,
      cookieBound: row.cookieBound,
      refreshTokenExpiresAt: row.expiresAt,
      tokenType: 'Bearer',
      user,
      session: toSessionInfo(row, row.id),
    };
  }

  /**
   * Rotates a refresh token. Exactly one of several concurrent calls with the same token wins (a conditional
   * UPDATE on the current generation); the others, and the last spent token within the grace period, get
   * REFRESH_TOKEN_ROTATED. Any other spent token of the session revokes the whole session. A cookie-bound
   * session's tokens count only from the cookie, and the cookie carries only theirs (INVALID_REFRESH_TOKEN).
   * Runs its own transaction on the root EntityManager: call it outside any other (a request's resolver does).
   */
  async refresh(
    call: Pick<Call, 'em' | 'meta'>,
    presented: string,
    source: RefreshTokenSource = 'argument',
  ): Promise<IssuedTokens> {
    const { meta } = call;
    const parts = parseRefreshToken(presented);
    if (!parts) throw unauthenticated('INVALID_REFRESH_TOKEN');
    const found = await findSessionWithUser(this.#statements, parts.sessionId);
    if (!found) throw unauthenticated('INVALID_REFRESH_TOKEN');
    const { session: row, user } = found;
    // One KeyObject for both tags of a refresh (the presented token's, the next one's).
    const tagKey = tagKeyOf(row.refreshTagKey);
    if (!isGenuine(parts, tagKey)) throw unauthenticated('INVALID_REFRESH_TOKEN');
    // Before anything is counted or revoked: a token from the wrong place is no token at all, so a cookie
    // session's token that leaked into a body (or a body token planted in the cookie) cannot even end the session.
    if (row.cookieBound !== (source === 'cookie')) throw unauthenticated('INVALID_REFRESH_TOKEN');
    // Counted only for tokens of this session (genuine tag), so nobody can spend another session's allowance.
    await enforce(this.#limits.refresh, row.id);
    // Before the session's own state: disabling revoked it too, and the holder of a genuine token is told why.
    if (user.disabled) throw unauthenticated('ACCOUNT_DISABLED');
    const now = this.#clock.now();
    const current = row.refreshGeneration;

    if (parts.generation === current && sameHash(row.refreshTokenHash, hashSecret(parts.secret))) {
      if (row.revokedAt) throw unauthenticated('SESSION_REVOKED');
      if (hasEnded(row, now)) throw unauthenticated('REFRESH_TOKEN_EXPIRED');
      const { refreshToken, changes } = rotate(row, now, this.#settings.refreshTokenTtlMs, tagKey);
      const written = await rotateRefreshToken(this.#statements, {
        sessionId: row.id,
        fromGeneration: current,
        fromHash: row.refreshTokenHash,
        fromExpiresAt: row.expiresAt.getTime(),
        now: () => this.#clock.now(),
        changes: { ...changes, ipAddress: meta.ipAddress, userAgent: meta.userAgent },
        audit: auditEvent(meta, { type: 'TOKEN_REFRESHED', userId: user.id, sessionId: row.id }, new Date(now)),
      });
      if (written === 'expired') throw unauthenticated('REFRESH_TOKEN_EXPIRED');
      if (written === 'overtaken') throw unauthenticated('REFRESH_TOKEN_ROTATED');
      const rotated: SessionRow = {
        ...row,
        ...changes,
        ipAddress: meta.ipAddress ?? row.ipAddress,
        userAgent: meta.userAgent ?? row.userAgent,
      };
      return this.issue(user, rotated, refreshToken);
    }

    if (parts.generation < current) {
      if (row.revokedAt) throw unauthenticated('SESSION_REVOKED');
      const rotatedAt = row.rotatedAt?.getTime() ?? 0;
      // Several tabs refreshing at once: the token spent by the latest rotation is forgiven for a moment.
      if (parts.generation === current - 1 && now - rotatedAt <= this.#settings.refreshReuseGraceMs) {
        throw unauthenticated('REFRESH_TOKEN_ROTATED');
      }
      await this.revoke(call.em, {
        userId: user.id,
        sessionIds: [row.id],
        reason: 'REFRESH_TOKEN_REUSE',
        meta,
        extra: {
          type: 'REFRESH_TOKEN_REUSE_DETECTED',
          userId: user.id,
          sessionId: row.id,
          detail: { generation: parts.generation, current },
        },
      });
      throw unauthenticated('REFRESH_TOKEN_REUSE');
    }

    throw unauthenticated('INVALID_REFRESH_TOKEN');
  }

  /**
   * Marks active sessions of one user revoked inside the caller's transaction, with an audit row each.
   * Returns the ids it revoked; the caller publishes them with `published` after commit. UNAUTHENTICATED
   * SESSION_REVOKED, revoking nothing, when `askedBy` has been revoked.
   */
  async revokeIn(tx: Em, order: RevocationOrder): Promise<Revocation> {
    const { userId, sessionIds, reason, meta, except, askedBy } = order;
    // `revokedReason` (set together with revokedAt, and not indexed) rather than `revokedAt` marks the active
    // rows here: a condition on the revoked-at index would let MySQL lock that index before the rows, the
    // opposite order to the refresh's UPDATE, and deadlock with it. Lock order everywhere: session rows
    // (by primary key or by user), then the indexes the UPDATE changes.
    // The asking session (`askedBy`) is read by this same statement (for 'all' it is among the user's rows
    // anyway): InnoDB locks what one statement reads in index order, so two such requests (an intruder's and the
    // owner's, each revoking the other's session) cannot each hold a row the other waits for. A transaction that
    // holds its caller's session first (holdCallerSession) and then revokes here can still meet one of these in a
    // cycle; InnoDB then rolls one back and `transactional` runs it again, as for any deadlock.
    const read = sessionIds === 'all' ? sessionIds : [...sessionIds, ...(askedBy === undefined ? [] : [askedBy])];
    // A session whose refresh token has expired is over already (its access tokens never outlive its refresh
    // token, see `issue`): nothing to revoke, count or announce (API.md, Sessions). Which are, is decided at `at`,
    // stamped once the rows are locked (`activeAt`), not by the read: a condition could only name a time before the
    // lock waits; and the asker is read whatever its end, to be checked as holdCallerSession checks a caller, for a
    // revocation only (one whose session has ended, its access token accepted up to the clock tolerance past that,
    // still revokes the others; revokeSession of its own ended session is NOT_FOUND). No condition on the end
    // changes what is locked: InnoDB locks every row of the user's it reads by the index, matching or not. A
    // session cannot come back to life once `at` has passed its end: a rotation extends one only if it has not
    // ended once it holds the row (rotateRefreshToken, rotateInPlace).
    const where = {
      user: userId,
      revokedReason: null,
      ...(read === 'all' ? {} : { id: { $in: read } }),
    };
    // FOR UPDATE on MySQL: also keeps a racing sign-in from adding a session this revocation would miss.
    const locked = await tx.find(Session, where, {
      fields: ['id', 'clientId', 'expiresAt'],
      disableIdentityMap: true,
      lockMode: LockMode.PESSIMISTIC_WRITE,
    });
    const at = revocationTime(this.#clock);
    if (askedBy !== undefined && !locked.some((r) => r.id === askedBy)) throw unauthenticated('SESSION_REVOKED');
    const rows = activeAt(locked, at);
    const asked = (id: string) => sessionIds === 'all' || sessionIds.includes(id);
    const revoked = rows.filter((r) => r.id !== except && asked(r.id));
    const ids = revoked.map((r) => r.id);
    if (ids.length > 0) {
      await tx.nativeUpdate(Session, { id: { $in: ids } }, { revokedAt: at, revokedReason: reason });
      for (const id of ids) audit(tx, meta, { type: 'SESSION_REVOKED', userId, sessionId: id, detail: { reason } }, at);
    }
    // The revocation feed reports each session's client.
    const clientIds = Object.fromEntries(revoked.map((r) => [r.id, r.clientId]));
    return { userId, sessionIds: ids, reason, revokedAt: at.getTime(), clientIds };
  }

  /**
   * Marks every active session opened for `clientId` revoked inside the caller's transaction (disabling the
   * client), with an audit row each, rows locked as `revokeIn` locks them. Returns one Revocation per user, for
   * the caller to publish with `published` after commit.
   */
  async revokeByClientIn(
    tx: Em,
    order: { readonly clientId: string; readonly reason: RevocationReason; readonly meta: RequestMeta },
  ): Promise<Revocation[]> {
    const { clientId, reason, meta } = order;
    const asOf = new Date(this.#clock.now());
    // Active as in revokeIn (revokedReason, not the revoked-at index, for the same lock order; not expired before
    // the read, nor at the stamp). On MySQL the locking read by client_id also holds off a sign-in for this client
    // from inserting a session meanwhile.
    const locked = await tx.find(
      Session,
      { clientId, revokedReason: null, expiresAt: { $gt: asOf } },
      {
        fields: ['id', 'user', 'expiresAt'],
        orderBy: { id: 'asc' },
        disableIdentityMap: true,
        lockMode: LockMode.PESSIMISTIC_WRITE,
      },
    );
    const at = revocationTime(this.#clock);
    const rows = activeAt(locked, at);
    const byUser = new Map<string, string[]>();
    for (const row of rows) {
      const userId = row.user.id;
      byUser.set(userId, [...(byUser.get(userId) ?? []), row.id]);
    }
    if (rows.length > 0) {
      await tx.nativeUpdate(Session, { id: { $in: rows.map((r) => r.id) } }, { revokedAt: at, revokedReason: reason });
    }
    return [...byUser].map(([userId, sessionIds]) => {
      for (const id of sessionIds)
        audit(tx, meta, { type: 'SESSION_REVOKED', userId, sessionId: id, detail: { reason } }, at);
      const clientIds = Object.fromEntries(sessionIds.map((id) => [id, clientId]));
      return { userId, sessionIds, reason, revokedAt: at.getTime(), clientIds };
    });
  }

  /** Tells every instance (and subscriber) about a committed revocation. */
  async published(revocation: Revocation): Promise<number> {
    if (revocation.sessionIds.length > 0) await this.#bus.publish(revocation);
    return revocation.sessionIds.length;
  }

  /** Revokes sessions in a transaction of its own (plus an `extra` audit row), then publishes. */
  async revoke(em: Em, order: RevocationOrder & { readonly extra?: AuditEntry }): Promise<number> {
    const revocation = await transactional(em, async (tx) => {
      const done = await this.revokeIn(tx, order);
      if (order.extra) audit(tx, order.meta, order.extra, new Date(done.revokedAt));
      return done;
    });
    return this.published(revocation);
  }

  /**
   * Gives a live session (its row read under the caller's lock) a new refresh token; the old one counts as spent
   * (reuse after the grace revokes). UNAUTHENTICATED TOKEN_EXPIRED when the session has ended: a rotation must not
   * bring it back (a revocation that locked it meanwhile left it out as ended, and an access token is accepted
   * up to the clock tolerance past its session's end).
   */
  rotateInPlace(row: SessionRow): { row: SessionRow; refreshToken: string } {
    const now = this.#clock.now();
    if (hasEnded(row, now)) throw unauthenticated('TOKEN_EXPIRED');
    const { refreshToken, changes } = rotate(row, now, this.#settings.refreshTokenTtlMs);
    Object.assign(row, changes);
    return { row, refreshToken };
  }

  /**
   * Revokes one active session of `userId`'s; NOT_FOUND when it is not one (another's, revoked or expired), as
   * read under the lock of its revocation. With `askedBy`, UNAUTHENTICATED SESSION_REVOKED first when the asking
   * session has been revoked (revokeIn).
   */
  async revokeOwn(em: Em, order: Omit<RevocationOrder, 'sessionIds' | 'except'> & { sessionId: string }) {
    const revocation = await transactional(em, async (tx) => {
      const done = await this.revokeIn(tx, { ...order, sessionIds: [order.sessionId] });
      // Nothing was written: the rollback undoes no more than the locks.
      if (done.sessionIds.length === 0) throw new AuthError('NOT_FOUND', 'No such session');
      return done;
    });
    await this.published(revocation);
  }

  /** Active sessions, newest first. */
  async listActive(em: Em, userId: string, currentSessionId: string | undefined): Promise<SessionInfo[]> {
    const rows = await em.find(
      Session,
      { user: userId, revokedAt: null, expiresAt: { $gt: new Date(this.#clock.now()) } },
      { orderBy: { createdAt: 'desc', id: 'asc' } },
    );
    return rows.map((row) => toSessionInfo(row, currentSessionId));
  }
}
