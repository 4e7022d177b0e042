import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { migrate } from '../src/db/migrate.ts';
import { createOrm, type Orm } from '../src/db/orm.ts';
import { databaseUrl, dialects } from './support/app.ts';

describe.each(dialects())('migrations on %s', (dialect) => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-migrations-'));
  let orm: Orm | undefined;
  afterAll(async () => {
    await orm?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('builds a schema from an empty database that matches the entities exactly', async () => {
    const { database } = loadConfig({ DATABASE_URL: await databaseUrl(dialect, dir) }, () => '');
    orm = await createOrm(database);
    const applied = await migrate(orm);
    expect(applied.length).toBeGreaterThan(0);
    expect(await orm.schema.getUpdateSchemaSQL({ wrap: false })).toBe('');
  });

  it('is idempotent: a second run applies nothing', async () => {
    expect(orm).toBeDefined();
    expect(await migrate(orm as Orm)).toEqual([]);
  });
});
