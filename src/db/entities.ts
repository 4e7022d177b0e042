// The persisted model: users, their sessions, and the audit trail of security events.
import { defineEntity, type InferEntity, p } from '@mikro-orm/core';

export const ROLES = ['USER', 'ADMIN'] as const;
export type Role = (typeof ROLES)[number];

export const REVOCATION_REASONS = [
  'LOGOUT',
  'REVOKED_BY_USER',
  'REVOKED_BY_ADMIN',
  'PASSWORD_CHANGED',
  'PASSWORD_RESET',
  'REFRESH_TOKEN_REUSE',
  'ACCOUNT_DELETED',
  'CLIENT_DISABLED',
  'CLIENT_SECRET_ROTATED',
  'MFA_CHANGED',
] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

export const User = defineEntity({
  name: 'User',
  tableName: 'users',
  properties: {
    id: p.string().length(36).primary(),
    email: p.string().length(254).unique(),
    /** bcrypt hash; null for accounts that only sign in through OAuth. */
    passwordHash: p.string().length(60).nullable(),
    emailVerified: p.boolean().default(false),
    displayName: p.string().length(100).nullable(),
    roles: p.string().length(64).default('USER'),
    /** Switched off by an admin: no sign-in, no refresh (its sessions were revoked when it was set). */
    disabled: p.boolean().default(false),
    /** API scopes granted to the user (not built-in ones), space-separated, sorted; '' for none. */
    scopes: p.string().length(2048).default(''),
    createdAt: p.datetime(3),
    updatedAt: p.datetime(3),
  },
});
export type UserRow = InferEntity<typeof User>;

export const Session = defineEntity({
  name: 'Session',
  tableName: 'sessions',
  properties: {
    id: p.string().length(36).primary(),
    user: () => p.manyToOne(User).deleteRule('cascade'),
    /** SHA-256 (hex) of the live refresh token's secret; the token itself is never stored. */
    refreshTokenHash: p.string().length(64),
    /** Counts rotations; a token of an earlier generation is a spent one. */
    refreshGeneration: p.integer().unsigned().default(0),
    /** HMAC key that tags this session's refresh tokens, so spent ones can be told from made-up ones. */
    refreshTagKey: p.string().length(43),
    rotatedAt: p.datetime(3).nullable(),
    createdAt: p.datetime(3),
    lastUsedAt: p.datetime(3),
    /** When the current refresh token expires (slides with each rotation). */
    expiresAt: p.datetime(3),
    /** The absolute end of the session, however often it is refreshed. */
    maxExpiresAt: p.datetime(3),
    userAgent: p.string().length(512).nullable(),
    ipAddress: p.string().length(45).nullable(),
    revokedAt: p.datetime(3).nullable().index(),
    revokedReason: p.string().length(32).nullable(),
    /** Its refresh tokens travel only in an HttpOnly cookie (tokenDelivery COOKIE), for its whole life. */
    cookieBound: p.boolean().default(false),
    /** The client (clients.id) the session was opened for: its tokens carry it as client_id, and its audiences. */
    clientId: p.string().length(64).default('default').index(),
  },
});
export type SessionRow = InferEntity<typeof Session>;

export const AUDIT_EVENT_TYPES = [
  'USER_REGISTERED',
  'LOGIN_SUCCEEDED',
  'LOGIN_FAILED',
  /** An account or a client IP went over its failed-login limit and is refused for a while. */
  'LOCKOUT',
  'TOKEN_REFRESHED',
  'REFRESH_TOKEN_REUSE_DETECTED',
  'SESSION_REVOKED',
  'PASSWORD_CHANGED',
  'PASSWORD_CHANGE_FAILED',
  'ROLES_CHANGED',
  'USER_SESSIONS_REVOKED',
  'USER_DISABLED',
  'USER_ENABLED',
  'USER_SCOPES_CHANGED',
  'CLIENT_CREATED',
  'CLIENT_UPDATED',
  'CLIENT_SECRET_ROTATED',
  'CLIENT_DISABLED',
  'CLIENT_ENABLED',
  'CLIENT_TOKEN_ISSUED',
  'CLIENT_AUTHENTICATION_FAILED',
  'MFA_TOTP_ENABLED',
  'MFA_TOTP_DISABLED',
  'MFA_RECOVERY_CODES_REGENERATED',
  'MFA_PASSKEY_ADDED',
  'MFA_PASSKEY_REMOVED',
  'MFA_RESET',
  'MFA_SUCCEEDED',
  'MFA_FAILED',
  'EMAIL_VERIFICATION_REQUESTED',
  'EMAIL_VERIFICATION_FAILED',
  'EMAIL_VERIFIED',
  'PASSWORD_RESET_REQUESTED',
  'PASSWORD_RESET_FAILED',
  'PASSWORD_RESET',
  'PROFILE_UPDATED',
  'ACCOUNT_DELETION_FAILED',
  'ACCOUNT_DELETED',
  'DATA_EXPORTED',
  'OAUTH_LOGIN',
  'OAUTH_SIGNUP',
  'OAUTH_LINKED',
  'OAUTH_UNLINKED',
  'OAUTH_FAILED',
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export const AuditEvent = defineEntity({
  name: 'AuditEvent',
  tableName: 'audit_events',
  properties: {
    // int unsigned: room for 4.29e9 events. (bigint would be nicer, but MikroORM 7 mis-diffs it on SQLite.)
    id: p.integer().primary().autoincrement().unsigned(),
    type: p.string().length(40),
    /** Not a foreign key: the trail outlives the account (anonymised on deletion). */
    userId: p.string().length(36).nullable(),
    sessionId: p.string().length(36).nullable(),
    ipAddress: p.string().length(45).nullable(),
    userAgent: p.string().length(512).nullable(),
    /** JSON object with event-specific facts; never a secret. */
    detail: p.text().nullable(),
    createdAt: p.datetime(3).index(),
  },
  // A user's trail in time order; and the anonymised one (user id null) of a time window: the revocations of
  // deleted accounts, whose sessions are gone (src/sessions/revoked-sessions.ts reads them every second).
  indexes: [{ properties: ['userId', 'createdAt'] }],
});
export type AuditEventRow = InferEntity<typeof AuditEvent>;

/** A provider account (GitHub, Google, an OIDC issuer) that signs in as a user: one per provider per user. */
export const LinkedAccount = defineEntity({
  name: 'LinkedAccount',
  tableName: 'linked_accounts',
  properties: {
    id: p.string().length(36).primary(),
    user: () => p.manyToOne(User).deleteRule('cascade'),
    /** The configured provider id: `github`, `google`, or the lower-cased NAME of OAUTH_OIDC_<NAME>_*. */
    provider: p.string().length(64),
    /** GitHub's numeric user id, an OIDC `sub`: stable, unlike the email. */
    providerUserId: p.string().length(255),
    /** The email the provider reported at linking time, for display. */
    email: p.string().length(254).nullable(),
    linkedAt: p.datetime(3),
  },
  uniques: [{ properties: ['provider', 'providerUserId'] }, { properties: ['user', 'provider'] }],
});
export type LinkedAccountRow = InferEntity<typeof LinkedAccount>;

export const CLIENT_TYPES = ['PUBLIC', 'CONFIDENTIAL'] as const;
export type ClientType = (typeof CLIENT_TYPES)[number];

/**
 * An application or service that tokens are issued to (API.md "Clients"). Lists are JSON arrays of strings.
 * `tokensRevokedAt`: every token issued to the client at or before this instant is refused (disabling it, rotating
 * its secret); a later token is not, unless the client is disabled.
 */
export const Client = defineEntity({
  name: 'Client',
  tableName: 'clients',
  properties: {
    id: p.string().length(64).primary(),
    name: p.string().length(200),
    type: p.string().length(16),
    /** SHA-256 (hex) of the client secret (256 random bits: a slow hash adds nothing); null for PUBLIC clients. */
    secretHash: p.string().length(64).nullable(),
    audiences: p.text(),
    redirectUris: p.text(),
    allowedOrigins: p.text(),
    scopes: p.text(),
    disabled: p.boolean().default(false),
    tokensRevokedAt: p.datetime(3).nullable(),
    tokensRevokedReason: p.string().length(32).nullable(),
    createdAt: p.datetime(3),
    updatedAt: p.datetime(3),
  },
});
export type ClientRow = InferEntity<typeof Client>;

/**
 * A user's TOTP (RFC 6238) second factor: at most one per user. The secret is encrypted at rest with the server's
 * MFA key (AES-256-GCM; see src/mfa/); `confirmedAt` null means an enrolment not yet confirmed (TOTP is off).
 */
export const MfaTotp = defineEntity({
  name: 'MfaTotp',
  tableName: 'mfa_totp',
  properties: {
    user: () => p.oneToOne(User).primary().deleteRule('cascade'),
    /** base64url(iv ‖ ciphertext ‖ tag) of the base32 secret; never the secret in clear. */
    secretEncrypted: p.string().length(255),
    confirmedAt: p.datetime(3).nullable(),
    /** The last 30-second step a code was accepted for: that step and earlier ones are refused (no replay). */
    lastUsedStep: p.integer().unsigned().nullable(),
    createdAt: p.datetime(3),
  },
});
export type MfaTotpRow = InferEntity<typeof MfaTotp>;

/** One of a user's recovery codes: hashed at rest, single use; a new set replaces the old one. */
export const RecoveryCode = defineEntity({
  name: 'RecoveryCode',
  tableName: 'mfa_recovery_codes',
  properties: {
    id: p.integer().primary().autoincrement().unsigned(),
    user: () => p.manyToOne(User).deleteRule('cascade'),
    /** SHA-256 (hex) of the code, keyed by the server's MFA key (HMAC). */
    codeHash: p.string().length(64),
    usedAt: p.datetime(3).nullable(),
    createdAt: p.datetime(3),
  },
});
export type RecoveryCodeRow = InferEntity<typeof RecoveryCode>;

/** A WebAuthn credential (passkey) of a user. */
export const Passkey = defineEntity({
  name: 'Passkey',
  tableName: 'passkeys',
  properties: {
    id: p.string().length(36).primary(),
    user: () => p.manyToOne(User).deleteRule('cascade'),
    /** The credential id, base64url, as the authenticator gave it. */
    credentialId: p.string().length(512).unique(),
    /** The COSE public key, base64url. */
    publicKey: p.text(),
    /** The signature counter last seen (WebAuthn §6.1.1); 0 for authenticators that do not count. */
    counter: p.integer().unsigned().default(0),
    /** Comma-separated AuthenticatorTransport values, or null. */
    transports: p.string().length(255).nullable(),
    deviceType: p.string().length(32).nullable(),
    backedUp: p.boolean().default(false),
    name: p.string().length(100).nullable(),
    createdAt: p.datetime(3),
    lastUsedAt: p.datetime(3).nullable(),
  },
});
export type PasskeyRow = InferEntity<typeof Passkey>;

export const entities = [User, Session, AuditEvent, LinkedAccount, Client, MfaTotp, RecoveryCode, Passkey];
