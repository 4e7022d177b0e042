// myData: everything stored about the account holder (account, sessions, linked accounts, second factor, audit
// trail), as JSON, for GDPR access requests. Never a secret: no password hash, no refresh-token hashes or keys, no
// codes, no TOTP secret (encrypted or not).
import { audit, readDetail } from '../audit/audit.ts';
import { type Call, callerAccount } from '../call.ts';
import { AuditEvent, LinkedAccount, MfaTotp, Passkey, RecoveryCode, Session } from '../db/entities.ts';
import { rolesOf } from '../sessions/sessions.ts';
import type { AccountDeps } from './deps.ts';

const iso = (date: Date | null | undefined) => (date ? date.toISOString() : null);

/** Reads the caller's data (fields listed one by one, so a new secret column never leaks by default). */
export async function exportMyData(deps: Pick<AccountDeps, 'clock'>, call: Call) {
  const { em, meta } = call;
  const user = await callerAccount(call);
  const userId = user.id;
  const sessions = await em.find(Session, { user: userId }, { orderBy: { createdAt: 'asc', id: 'asc' } });
  const linked = await em.find(LinkedAccount, { user: userId }, { orderBy: { linkedAt: 'asc', id: 'asc' } });
  const events = await em.find(AuditEvent, { userId }, { orderBy: { createdAt: 'asc', id: 'asc' } });
  const totp = await em.findOne(MfaTotp, { user: userId });
  const recoveryCodes = await em.find(RecoveryCode, { user: userId }, { orderBy: { id: 'asc' } });
  const passkeys = await em.find(Passkey, { user: userId }, { orderBy: { createdAt: 'asc', id: 'asc' } });
  const now = new Date(deps.clock.now());
  const data = {
    exportedAt: now.toISOString(),
    user: {
      id: user.id,
      email: user.email,
      emailVerified: user.emailVerified,
      displayName: user.displayName ?? null,
      roles: rolesOf(user),
      hasPassword: Boolean(user.passwordHash),
      createdAt: iso(user.createdAt),
      updatedAt: iso(user.updatedAt),
    },
    sessions: sessions.map((s) => ({
      id: s.id,
      createdAt: iso(s.createdAt),
      lastUsedAt: iso(s.lastUsedAt),
      expiresAt: iso(s.expiresAt),
      userAgent: s.userAgent ?? null,
      ipAddress: s.ipAddress ?? null,
      revokedAt: iso(s.revokedAt),
      revokedReason: s.revokedReason ?? null,
    })),
    linkedAccounts: linked.map((a) => ({
      provider: a.provider,
      providerUserId: a.providerUserId,
      email: a.email ?? null,
      linkedAt: iso(a.linkedAt),
    })),
    secondFactor: {
      // That TOTP is (or is being) set up, and when; its secret is not the holder's data to take away.
      totp: totp ? { confirmedAt: iso(totp.confirmedAt), createdAt: iso(totp.createdAt) } : null,
      // Each code's state, never the code or its hash.
      recoveryCodes: recoveryCodes.map((c) => ({ createdAt: iso(c.createdAt), usedAt: iso(c.usedAt) })),
      // The credential id names the passkey on the holder's authenticator; the public key is left out (a key, of
      // use to no one reading the export).
      passkeys: passkeys.map((k) => ({
        id: k.id,
        name: k.name ?? null,
        credentialId: k.credentialId,
        transports: k.transports ? k.transports.split(',') : [],
        deviceType: k.deviceType ?? null,
        backedUp: k.backedUp,
        createdAt: iso(k.createdAt),
        lastUsedAt: iso(k.lastUsedAt),
      })),
    },
    auditEvents: events.map((e) => ({
      type: e.type,
      createdAt: iso(e.createdAt),
      sessionId: e.sessionId ?? null,
      ipAddress: e.ipAddress ?? null,
      userAgent: e.userAgent ?? null,
      detail: readDetail(e.detail),
    })),
  };
  audit(em, meta, { type: 'DATA_EXPORTED', userId }, now);
  await em.flush();
  return data;
}
