// The provider accounts linked to a user, oldest first.

import type { Call } from '../call.ts';
import { LinkedAccount } from '../db/entities.ts';

export interface LinkedAccountInfo {
  readonly provider: string;
  readonly providerUserId: string;
  readonly email: string | null;
  readonly linkedAt: Date;
}

/** The provider accounts linked to `userId` (whose scope check the schema made), oldest first. */
export async function listLinkedAccounts(
  _deps: unknown,
  call: Call,
  { userId }: { userId: string },
): Promise<LinkedAccountInfo[]> {
  const rows = await call.em.find(LinkedAccount, { user: userId }, { orderBy: { linkedAt: 'asc', provider: 'asc' } });
  return rows.map((row) => ({
    provider: row.provider,
    providerUserId: row.providerUserId,
    email: row.email ?? null,
    linkedAt: row.linkedAt,
  }));
}
