// The Kysely table declarations of the hot paths (src/db/tables.ts) name exactly the columns of the entities.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEvent, Client, Session, User } from '../src/db/entities.ts';
import { AUDIT_EVENTS_COLUMNS, CLIENTS_COLUMNS, SESSIONS_COLUMNS, USERS_COLUMNS } from '../src/db/tables.ts';
import { startTestApp, type TestApp } from './support/app.ts';

type EntityName = typeof User | typeof Session | typeof Client | typeof AuditEvent;

describe('table declarations', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  const columnsOf = (entity: EntityName) =>
    t.app.orm
      .getMetadata()
      .get(entity as never)
      .props.flatMap((prop) => prop.fieldNames ?? [])
      .sort();

  it.each([
    ['users', User, USERS_COLUMNS, []],
    ['sessions', Session, SESSIONS_COLUMNS, []],
    ['clients', Client, CLIENTS_COLUMNS, []],
    ['audit_events', AuditEvent, AUDIT_EVENTS_COLUMNS, ['id']],
  ] as const)('declares the columns of %s', (_table, entity, declared, generated) => {
    expect(Object.keys(declared).sort()).toEqual(
      columnsOf(entity).filter((name) => !generated.includes(name as never)),
    );
  });
});
