// Bench child: the real service, built by createApp from the environment exactly as src/main.ts does.
import { readFileSync } from 'node:fs';
import { createApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { serveUntilStopped } from './children.ts';

const app = await createApp(loadConfig(process.env, (path) => readFileSync(path, 'utf8')));
serveUntilStopped(await app.listen(), () => app.close());
