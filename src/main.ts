// Process entry: config → createApp → listen → graceful shutdown on SIGINT/SIGTERM.
import { readFileSync } from 'node:fs';
import { createApp } from './app.ts';
import { ConfigError, loadConfig } from './config.ts';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env, (path) => readFileSync(path, 'utf8'));
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`configuration error: ${error.message}`);
  process.exit(1);
}

const app = await createApp(config);
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
