// The Kysely table declarations of the hot paths (src/db/tables.ts) name exactly the columns of the entities.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_EVENTS_COLUMNS, SESSIONS_COLUMNS, USERS_COLUMNS } from '../src/db/tables.ts';
import { startTestApp, type TestApp } from './support/app.ts';

describe('table declarations', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  const columnsOf = (entity: string) =>
    t.app.orm
      .getMetadata()
      .get(entity)
      .props.flatMap((prop) => prop.fieldNames ?? [])
      .sort();

  it.each([
    ['User', USERS_COLUMNS, []],
    ['Session', SESSIONS_COLUMNS, []],
    ['AuditEvent', AUDIT_EVENTS_COLUMNS, ['id']],
  ] as const)('declares the columns of %s', (entity, declared, generated) => {
    expect(Object.keys(declared).sort()).toEqual(
      columnsOf(entity).filter((name) => !generated.includes(name as never)),
    );
  });
});
