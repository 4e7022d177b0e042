// `npm run migrate`: applies pending migrations to DATABASE_URL and exits.
import { existsSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { ConfigError, configErrorLines, loadConfig } from '../config.ts';
import { migrate } from './migrate.ts';
import { createOrm } from './orm.ts';

if (existsSync('.env')) process.loadEnvFile('.env');

// A signal must not cut a migration in half (MariaDB's DDL is not transactional; a half-applied migration stops
// every later start): the run finishes, then exits. A second signal exits at once.
let signalled = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (signalled) process.exit(128 + (constants.signals[signal] ?? 0));
    signalled = true;
    console.error(`${signal}: finishing the migrations, then exiting`);
  });
}

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
