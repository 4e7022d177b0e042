// Which second factors a user has: what User.mfaEnabled and User.mfaMethods show and MFA_REQUIRED offers.
import { CompiledQuery } from 'kysely';
import type { Em } from '../db/orm.ts';
import { kysely } from '../db/tables.ts';

export const MFA_METHODS = ['TOTP', 'PASSKEY', 'RECOVERY_CODE'] as const;
export type MfaMethod = (typeof MFA_METHODS)[number];

/**
 * TOTP when confirmed, PASSKEY when the user has one, RECOVERY_CODE while an unspent code remains (and another
 * factor is on: codes alone are no second factor). Empty when MFA is off. One statement on `em`'s connection (its
 * transaction, if any): changes to MFA rows still pending in its unit of work are not seen, so flush them first.
 */
export async function mfaMethodsOf(em: Em, userId: string): Promise<MfaMethod[]> {
  // One statement (every sign-in asks, twice): the same text in SQLite and MySQL, each EXISTS on an index.
  const { rows } = await kysely(em).executeQuery(CompiledQuery.raw(HAS_FACTORS, [userId, userId, userId]));
  const has = rows[0] as { totp: unknown; passkey: unknown; code: unknown } | undefined;
  const methods: MfaMethod[] = [];
  if (Number(has?.totp)) methods.push('TOTP');
  if (Number(has?.passkey)) methods.push('PASSKEY');
  if (methods.length > 0 && Number(has?.code)) methods.push('RECOVERY_CODE');
  return methods;
}

const HAS_FACTORS =
  'select exists(select 1 from mfa_totp where user_id = ? and confirmed_at is not null) as totp, ' +
  'exists(select 1 from passkeys where user_id = ?) as passkey, ' +
  'exists(select 1 from mfa_recovery_codes where user_id = ? and used_at is null) as code';
