// Passkeys: registration, listing, renaming and removal by their owner; the passwordless sign-in
// (startPasskeyLogin, loginWithPasskey); and the passkey factor of the MFA step (PasskeyFactor).
import { randomUUID } from 'node:crypto';
import { ForeignKeyConstraintViolationException, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/server';
import { audit } from '../audit/audit.ts';
import { auditLockouts } from '../auth/login.ts';
import { normalizeEmail } from '../auth/validate.ts';
import { type Call, callerAccount, callerOf } from '../call.ts';
import type { Clock } from '../clock.ts';
import { MfaTotp, Passkey, type PasskeyRow, RecoveryCode, User, type UserRow } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';
import { transactional } from '../db/transaction.ts';
import { AuthError, badInput } from '../errors.ts';
import { withAttempt } from '../limits/attempts.ts';
import { enforce, ipKey, type RateLimits } from '../limits/rate-limits.ts';
import type { IssuedTokens, Sessions, TokenDelivery } from '../sessions/sessions.ts';
import { type PasskeyFactor, passkeyStands } from './passkey-factor.ts';
import { lockUserForMfaChange } from './user-lock.ts';
import type { AssertionOutcome, WebAuthn } from './webauthn.ts';

export interface PasskeyDeps {
  readonly webauthn: WebAuthn;
  readonly sessions: Sessions;
  readonly clock: Clock;
  readonly limits: Pick<RateLimits, 'login' | 'passkeyStart'>;
}

/** Rolls back a passkey sign-in whose passkey was removed between its assertion and the session. */
class PasskeyRemoved extends Error {}

/** A passwordless sign-in's challenge: the id to answer it with, and the options for navigator.credentials.get. */
export interface PasskeyChallenge {
  readonly challengeId: string;
  readonly options: Record<string, unknown>;
}

export interface PasskeyLoginInput {
  readonly challengeId: string;
  /** AuthenticationResponseJSON, as the browser (or @simplewebauthn/browser) made it. */
  readonly response?: unknown;
  readonly clientId?: string | null;
  readonly tokenDelivery?: TokenDelivery | null;
}

const MAX_NAME_LENGTH = 100;
// Challenge ids are UUIDs; anything much longer is no id of ours and is not looked up.
const MAX_CHALLENGE_ID_LENGTH = 64;

const invalidCredentials = () => new AuthError('INVALID_CREDENTIALS', 'The passkey was not accepted');
const invalidResponse = () =>
  badInput('response', 'The passkey response is invalid, or its registration expired or was already used');

/** A passkey's name as given: trimmed, at most 100 characters; empty means none. */
function passkeyName(name: string | null | undefined): string | null {
  const trimmed = name?.trim() ?? '';
  if (trimmed.length > MAX_NAME_LENGTH) throw badInput('name', `At most ${MAX_NAME_LENGTH} characters`);
  return trimmed === '' ? null : trimmed;
}

/** The caller's passkeys, oldest first. */
export function listPasskeys(call: Call, userId: string): Promise<PasskeyRow[]> {
  return call.em.find(Passkey, { user: userId }, { orderBy: { createdAt: 'asc', id: 'asc' } });
}

/** Options for navigator.credentials.create: a new passkey for the caller (replaces a registration they started). */
export async function startPasskeyRegistration(
  deps: Pick<PasskeyDeps, 'webauthn'>,
  call: Call,
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const user = await callerAccount(call);
  return deps.webauthn.registrationOptions(call.em, user);
}

/**
 * Stores the passkey that answers the caller's registration (the challenge is spent either way; BAD_USER_INPUT
 * field `response` when it does not verify), revokes the caller's other sessions (MFA_CHANGED), audited.
 */
export async function finishPasskeyRegistration(
  deps: PasskeyDeps,
  call: Call,
  input: { readonly response?: unknown; readonly name?: string | null },
): Promise<PasskeyRow> {
  const caller = callerOf(call);
  const name = passkeyName(input.name);
  const credential = await deps.webauthn.verifyRegistration(caller.sub, input.response);
  if (!credential) throw invalidResponse();
  const { revocation, passkey } = await transactional(call.em, async (tx) => {
    const now = new Date(deps.clock.now());
    const user = await lockUserForMfaChange(tx, caller.sub, caller.sid);
    if (!user) throw invalidResponse();
    const passkey = tx.create(Passkey, {
      id: randomUUID(),
      user: user.id,
      ...credential,
      name,
      createdAt: now,
      lastUsedAt: null,
    });
    audit(tx, call.meta, { type: 'MFA_PASSKEY_ADDED', userId: user.id, detail: { passkeyId: passkey.id } }, now);
    await tx.flush();
    const revocation = await deps.sessions.revokeIn(tx, {
      userId: user.id,
      sessionIds: 'all',
      reason: 'MFA_CHANGED',
      meta: call.meta,
      except: caller.sid,
    });
    return { revocation, passkey };
  }).catch((error: unknown) => {
    if (error instanceof UniqueConstraintViolationException) {
      throw badInput('response', 'This passkey is already registered');
    }
    throw error;
  });
  await deps.sessions.published(revocation);
  return passkey;
}

/**
 * Renames one of the caller's passkeys; NOT_FOUND for an unknown id or another user's. A passkey change like the
 * others (the user row, then the caller's session): UNAUTHENTICATED SESSION_REVOKED once the session that asks has
 * been revoked, so that a session thrown out by its owner cannot rename the owner's passkeys after the answer.
 */
export async function renamePasskey(
  call: Call,
  input: { readonly id: string; readonly name?: string | null },
): Promise<PasskeyRow> {
  const caller = callerOf(call);
  const name = passkeyName(input.name);
  return transactional(call.em, async (tx) => {
    await lockUserForMfaChange(tx, caller.sub, caller.sid);
    const row = await tx.findOne(Passkey, { id: input.id, user: caller.sub });
    if (!row) throw new AuthError('NOT_FOUND', 'No such passkey');
    // Managed by `tx`: written when the transaction commits.
    row.name = name;
    return row;
  });
}

/**
 * Removes one of the caller's passkeys (NOT_FOUND for an unknown id or another user's), revokes the caller's
 * other sessions (MFA_CHANGED), audited. With neither TOTP nor a passkey left, MFA is off: the recovery codes go.
 */
export async function removePasskey(deps: PasskeyDeps, call: Call, input: { readonly id: string }): Promise<UserRow> {
  const caller = callerOf(call);
  const revocation = await transactional(call.em, async (tx) => {
    const now = new Date(deps.clock.now());
    await lockUserForMfaChange(tx, caller.sub, caller.sid);
    const removed = await tx.nativeDelete(Passkey, { id: input.id, user: caller.sub });
    if (removed !== 1) throw new AuthError('NOT_FOUND', 'No such passkey');
    audit(tx, call.meta, { type: 'MFA_PASSKEY_REMOVED', userId: caller.sub, detail: { passkeyId: input.id } }, now);
    const [passkeysLeft, totp] = await Promise.all([
      tx.count(Passkey, { user: caller.sub }),
      tx.count(MfaTotp, { user: caller.sub, confirmedAt: { $ne: null } }),
    ]);
    if (passkeysLeft === 0 && totp === 0) await tx.nativeDelete(RecoveryCode, { user: caller.sub });
    return deps.sessions.revokeIn(tx, {
      userId: caller.sub,
      sessionIds: 'all',
      reason: 'MFA_CHANGED',
      meta: call.meta,
      except: caller.sid,
    });
  });
  await deps.sessions.published(revocation);
  return callerAccount(call);
}

/**
 * A challenge for a passwordless sign-in. With an email, the options list that account's passkeys and only one
 * of them can answer; an unknown email gets what an account without passkeys gets (nothing to list), bound to
 * nobody. Without one, any discoverable passkey can answer. RATE_LIMITED past RATE_LIMIT_PASSKEY_START_IP per client
 * IP: each call stores a challenge for 5 minutes, which anonymous callers could otherwise pile up without end.
 */
export async function startPasskeyLogin(
  deps: Pick<PasskeyDeps, 'webauthn' | 'limits'>,
  call: Call,
  input: { readonly email?: string | null },
): Promise<PasskeyChallenge> {
  await enforce(deps.limits.passkeyStart, ipKey(call.meta.ipAddress));
  const challengeId = deps.webauthn.newChallengeId();
  if (input.email == null) {
    const options = await deps.webauthn.assertionOptions('login', challengeId, null, []);
    return { challengeId, options: { ...options } };
  }
  const email = normalizeEmail(input.email);
  const user = await call.em.findOne(User, { email }, { fields: ['id'] });
  // The same query whether or not the account exists; an id no account has signs nobody in.
  const boundTo = user?.id ?? randomUUID();
  const passkeys = await call.em.find(
    Passkey,
    { user: boundTo },
    { fields: ['credentialId', 'transports'], orderBy: { createdAt: 'asc', id: 'asc' } },
  );
  const options = await deps.webauthn.assertionOptions('login', challengeId, boundTo, passkeys);
  return { challengeId, options: { ...options } };
}

/**
 * A complete sign-in with a passkey (both factors). Any failure is INVALID_CREDENTIALS and counts against the
 * client IP's failed sign-ins, reserved before the assertion is checked; a disabled account is ACCOUNT_DISABLED,
 * told only after a valid assertion.
 */
export async function loginWithPasskey(deps: PasskeyDeps, call: Call, input: PasskeyLoginInput): Promise<IssuedTokens> {
  const { em, meta } = call;
  // Before anything is checked: a wrong clientId costs no attempt.
  const client = deps.sessions.clients.forSignIn(input.clientId);
  const { outcome, verdict } = await withAttempt(deps.limits.login.reserveIp(meta.ipAddress), async (attempt) => {
    let outcome: AssertionOutcome = { ok: false, reason: 'NO_CHALLENGE' };
    const verdict = await attempt.compare(async () => {
      if (input.challengeId.length > MAX_CHALLENGE_ID_LENGTH) return false;
      outcome = await deps.webauthn.verifyAssertion(em, 'login', input.challengeId, input.response);
      return outcome.ok;
    });
    return { outcome: outcome as AssertionOutcome, verdict };
  });
  const now = new Date(deps.clock.now());
  const user = outcome.ok ? await em.findOne(User, { id: outcome.userId }) : null;
  if (!verdict.matched || !outcome.ok || !user) {
    const reason = outcome.ok ? 'UNKNOWN_USER' : outcome.reason;
    audit(
      em,
      meta,
      {
        type: 'LOGIN_FAILED',
        userId: outcome.userId ?? null,
        detail: { method: 'PASSKEY', reason, passkeyId: outcome.passkeyId ?? null },
      },
      now,
    );
    auditLockouts(em, meta, verdict.matched ? [] : verdict.failure, null, now);
    await em.flush();
    throw invalidCredentials();
  }
  let opened: Awaited<ReturnType<typeof deps.sessions.open>>;
  try {
    opened = await transactional(em, async (tx) => {
      const session = await deps.sessions.open(tx, user, meta, input.tokenDelivery ?? 'BODY', 'existing', client.id);
      // The passkey checked before this transaction must still be the account's: removing it revokes every session
      // there is, and this one is not there yet. Read after the session's INSERT, which waits for a removal's
      // revocation (it locks the user's sessions) to commit; a removal that comes later finds this session.
      if (!(await passkeyStands(tx, user.id, outcome.passkeyId))) throw new PasskeyRemoved();
      audit(
        tx,
        meta,
        {
          type: 'LOGIN_SUCCEEDED',
          userId: user.id,
          sessionId: session.row.id,
          detail: { method: 'PASSKEY', passkeyId: outcome.passkeyId },
        },
        now,
      );
      return session;
    });
  } catch (error) {
    if (error instanceof AuthError && error.code === 'ACCOUNT_DISABLED') {
      audit(
        em,
        meta,
        { type: 'LOGIN_FAILED', userId: user.id, detail: { method: 'PASSKEY', reason: 'ACCOUNT_DISABLED' } },
        now,
      );
      await em.flush();
      throw error;
    }
    if (error instanceof PasskeyRemoved) {
      audit(
        em,
        meta,
        {
          type: 'LOGIN_FAILED',
          userId: user.id,
          detail: { method: 'PASSKEY', reason: 'UNKNOWN_PASSKEY', passkeyId: outcome.passkeyId },
        },
        now,
      );
      await em.flush();
      throw invalidCredentials();
    }
    // The account was deleted between the assertion and the new session: as if it never existed.
    if (error instanceof ForeignKeyConstraintViolationException) throw invalidCredentials();
    throw error;
  }
  return deps.sessions.issue(opened.user, opened.row, opened.refreshToken);
}

/** The passkey factor of the MFA step: challenges bound to the step's mfaToken, answered by the user's passkeys. */
export function createPasskeyFactor(webauthn: WebAuthn): PasskeyFactor {
  return {
    async optionsFor(em: Em, userId: string, mfaTokenId: string) {
      const passkeys = await em.find(
        Passkey,
        { user: userId },
        { fields: ['credentialId', 'transports'], orderBy: { createdAt: 'asc', id: 'asc' } },
      );
      if (passkeys.length === 0) return undefined;
      return { ...(await webauthn.assertionOptions('mfa', mfaTokenId, userId, passkeys)) };
    },
    async verify(em: Em, userId: string, mfaTokenId: string, response: unknown) {
      const outcome = await webauthn.verifyAssertion(em, 'mfa', mfaTokenId, response);
      return outcome.ok && outcome.userId === userId ? outcome.passkeyId : null;
    },
  };
}
