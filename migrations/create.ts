// Generates the next migration for both dialects from the entity definitions:
//   npm run migrate:create -- <name>
// SQLite is diffed in memory; MySQL against MYSQL_URL, or a throwaway MariaDB when that is unset.
import { loadConfig } from '../src/config.ts';
import { migrate } from '../src/db/migrate.ts';
import { createOrm } from '../src/db/orm.ts';
import { createDatabase, startMariaDb } from '../tools/services.ts';

const name = process.argv[2];

async function createFor(url: string) {
  const { database } = loadConfig({ DATABASE_URL: url }, () => '');
  const orm = await createOrm(database);
  try {
    await migrate(orm);
    const result = await orm.migrator.create(undefined, false, false, name);
    console.log(`${database.dialect}: ${result.fileName || 'no changes'}`);
  } finally {
    await orm.close();
  }
}

await createFor('sqlite::memory:');
if (process.env.MYSQL_URL) {
  await createFor(process.env.MYSQL_URL);
} else {
  const server = await startMariaDb();
  try {
    await createFor(await createDatabase(server, 'migrations'));
  } finally {
    await server.stop();
  }
}
