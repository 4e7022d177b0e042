// `npm run migrate`: applies pending migrations to DATABASE_URL and exits.
import { existsSync, readFileSync } from 'node:fs';
import { ConfigError, configErrorLines, loadConfig } from '../config.ts';
import { migrate } from './migrate.ts';
import { createOrm } from './orm.ts';

if (existsSync('.env')) process.loadEnvFile('.env');

try {
  const config = loadConfig(process.env, (path) => readFileSync(path, 'utf8'));
  const orm = await createOrm(config.database);
  try {
    const applied = await migrate(orm);
    console.log(applied.length ? `applied ${applied.join(', ')}` : 'database is up to date');
  } finally {
    await orm.close();
  }
} catch (error) {
  console.error(error instanceof ConfigError ? configErrorLines(error) : error);
  process.exitCode = 1;
}
