// Reads the audit trail: newest first, filtered by type and user, paged by an opaque cursor over the row id.

import type { Call } from '../call.ts';
import { AuditEvent, type AuditEventRow, type AuditEventType } from '../db/entities.ts';
import { badInput } from '../errors.ts';
import { readDetail } from './audit.ts';

export const MAX_AUDIT_PAGE_SIZE = 100;

export interface AuditEventInfo {
  readonly id: string;
  readonly type: AuditEventType;
  readonly userId: string | null;
  readonly sessionId: string | null;
  readonly ipAddress: string | null;
  readonly userAgent: string | null;
  readonly detail: unknown;
  readonly createdAt: Date;
}

export interface AuditEventPage {
  readonly edges: readonly { cursor: string; node: AuditEventInfo }[];
  readonly pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** Events listed when the caller does not say how many. */
export const DEFAULT_AUDIT_PAGE_SIZE = 20;

export interface AuditQuery {
  /** Default DEFAULT_AUDIT_PAGE_SIZE. */
  readonly first?: number | null;
  readonly after?: string | null;
  readonly type?: AuditEventType | null;
  readonly userId?: string | null;
}

const encodeCursor = (id: number) => Buffer.from(`audit:${id}`).toString('base64url');

function decodeCursor(cursor: string): number {
  const match = /^audit:(\d{1,10})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw badInput('after', 'The cursor is not one this API returned');
  return Number(match[1]);
}

const toInfo = (row: AuditEventRow): AuditEventInfo => ({
  id: String(row.id),
  type: row.type as AuditEventType,
  userId: row.userId ?? null,
  sessionId: row.sessionId ?? null,
  ipAddress: row.ipAddress ?? null,
  userAgent: row.userAgent ?? null,
  detail: readDetail(row.detail),
  createdAt: row.createdAt,
});

/** A page of audit events, newest first. */
export async function listAuditEvents(_deps: unknown, call: Call, input: AuditQuery): Promise<AuditEventPage> {
  const { em } = call;
  const query = { ...input, first: input.first ?? DEFAULT_AUDIT_PAGE_SIZE };
  if (!Number.isInteger(query.first) || query.first < 0 || query.first > MAX_AUDIT_PAGE_SIZE) {
    throw badInput('first', `first must be an integer from 0 to ${MAX_AUDIT_PAGE_SIZE}`);
  }
  const where = {
    ...(query.type ? { type: query.type } : {}),
    ...(query.userId ? { userId: query.userId } : {}),
    ...(query.after ? { id: { $lt: decodeCursor(query.after) } } : {}),
  };
  const rows = await em.find(AuditEvent, where, { orderBy: { id: 'desc' }, limit: query.first + 1 });
  const nodes = rows.slice(0, query.first);
  const last = nodes.at(-1);
  return {
    edges: nodes.map((row) => ({ cursor: encodeCursor(row.id), node: toInfo(row) })),
    pageInfo: { hasNextPage: rows.length > query.first, endCursor: last ? encodeCursor(last.id) : null },
  };
}
