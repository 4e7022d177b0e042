// Process entry: config → createApp → listen → graceful shutdown on SIGINT/SIGTERM.
import { existsSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
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

// A signal during start-up (connecting, waiting for or running migrations) must not cut a migration in half:
// MariaDB's DDL is not transactional, and a migration left half-applied stops every later start ("Table …
// already exists"). The start finishes, then the process shuts down as below without serving; a second signal
// exits at once (harmless while only waiting for the migrations lock).
let signalledDuringStart: NodeJS.Signals | undefined;
const duringStart = (signal: NodeJS.Signals) => {
  if (signalledDuringStart) process.exit(128 + (constants.signals[signal] ?? 0));
  signalledDuringStart = signal;
  console.error(`${signal} during start-up: finishing it (migrations included), then shutting down`);
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, duringStart);

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

const url = signalledDuringStart ? undefined : await app.listen();
if (url) {
  app.logger.info({ url: `${url}/graphql` }, 'listening');
  if (config.graphiql) console.log(`GraphiQL: ${url}/graphql`);
}

// SIGTERM/SIGINT: stop accepting, end SSE streams, close WebSockets with 1001, give in-flight requests up to
// DRAIN_MS, and exit 0, all within 10 s (Docker's default stop timeout; compose.yaml allows a little more).
// A second signal means "now": exit at once, with the conventional 128 + signal number.
const DRAIN_MS = 8_000;
const HARD_LIMIT_MS = 9_500;
let stopping = false;
const shutdown = (signal: NodeJS.Signals) => {
  if (stopping) {
    app.logger.warn({ signal }, 'second signal: exiting at once');
    process.exit(128 + (constants.signals[signal] ?? 0));
  }
  stopping = true;
  app.logger.info({ signal }, 'shutting down');
  // Closing the database or Redis should take no time; if it hangs, exit anyway (and say it went wrong).
  const force = setTimeout(() => {
    app.logger.error('shutdown did not finish in time');
    process.exit(1);
  }, HARD_LIMIT_MS);
  force.unref();
  app.close(DRAIN_MS).then(
    () => process.exit(0),
    (error: unknown) => {
      app.logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    },
  );
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.off(signal, duringStart);
  process.on(signal, shutdown);
}
if (signalledDuringStart) shutdown(signalledDuringStart);
