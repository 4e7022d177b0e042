// The provider accounts linked to a user, oldest first.
import { LinkedAccount } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';

export interface LinkedAccountInfo {
  readonly provider: string;
  readonly providerUserId: string;
  readonly email: string | null;
  readonly linkedAt: Date;
}

export async function listLinkedAccounts(em: Em, userId: string): Promise<LinkedAccountInfo[]> {
  const rows = await em.find(LinkedAccount, { user: userId }, { orderBy: { linkedAt: 'asc', provider: 'asc' } });
  return rows.map((row) => ({
    provider: row.provider,
    providerUserId: row.providerUserId,
    email: row.email ?? null,
    linkedAt: row.linkedAt,
  }));
}
