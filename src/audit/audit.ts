// Appends security events to the audit table, inside the caller's unit of work.
import { AuditEvent, type AuditEventRow, type AuditEventType } from '../db/entities.ts';
import type { Em } from '../db/orm.ts';

export interface RequestMeta {
  readonly ipAddress: string | null;
  readonly userAgent: string | null;
}

export interface AuditEntry {
  readonly type: AuditEventType;
  readonly userId?: string | null;
  readonly sessionId?: string | null;
  readonly detail?: Readonly<Record<string, string | number | boolean | null>>;
}

/** The audit row for `entry`, as `meta` and `at` make it: the one mapping, for the ORM and the Kysely paths. */
export function auditEvent(meta: RequestMeta, entry: AuditEntry, at: Date): Omit<AuditEventRow, 'id'> {
  return {
    type: entry.type,
    userId: entry.userId ?? null,
    sessionId: entry.sessionId ?? null,
    ipAddress: meta.ipAddress,
    userAgent: meta.userAgent,
    detail: entry.detail ? JSON.stringify(entry.detail) : null,
    createdAt: at,
  };
}

/** Queues the event on `em`; it is written with the surrounding transaction's flush. */
export function audit(em: Em, meta: RequestMeta, entry: AuditEntry, at: Date): void {
  em.create(AuditEvent, auditEvent(meta, entry, at));
}

/** The `detail` of a stored event, as the JSON it was written as (the text itself if it is not JSON). */
export function readDetail(detail: string | null | undefined): unknown {
  if (!detail) return null;
  try {
    return JSON.parse(detail);
  } catch {
    return detail;
  }
}
