// Process entry: config → createApp → listen → graceful shutdown on SIGINT/SIGTERM.
import { existsSync, readFileSync } from 'node:fs';
import { type App, createApp } from './app.ts';
import { CannotConnectError } from './cannot-connect.ts';
import { type Config, ConfigError, configErrorLines, configWarnings, loadConfig } from './config.ts';
import { KeyError } from './tokens/key-store.ts';

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

// A .env file in the working directory fills in variables the environment does not set.
if (existsSync('.env')) process.loadEnvFile('.env');

let config: Config;
try {
  config = loadConfig(process.env, (path) => readFileSync(path, 'utf8'));
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  fail(configErrorLines(error));
}

let app: App;
try {
  app = await createApp(config);
} catch (error) {
  if (error instanceof KeyError) fail(`configuration error: ${error.message}`);
  if (error instanceof CannotConnectError) fail(`cannot start: ${error.message}`);
  fail(`cannot start: ${error instanceof Error ? error.message : String(error)}`);
}

// Allowed in production, but worth a second look: one line each, naming the variable.
for (const warning of configWarnings(config)) app.logger.warn({ variable: warning.split(':')[0] }, warning);

const url = await app.listen();
app.logger.info({ url: `${url}/graphql` }, 'listening');
if (config.graphiql) console.log(`GraphiQL: ${url}/graphql`);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    app.logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        app.logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
