// Bench child: the real service, built by createApp from the environment exactly as src/main.ts does.
import { readFileSync } from 'node:fs';
import { createApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { serveUntilStopped } from './children.ts';

/** The answer to `{ type: 'memory' }` over IPC: process.memoryUsage() after full collections when --expose-gc. */
export interface MemoryReport extends NodeJS.MemoryUsage {
  readonly collected: boolean;
}

const app = await createApp(loadConfig(process.env, (path) => readFileSync(path, 'utf8')));

// Bench-only, over the parent's IPC channel rather than an HTTP endpoint, so the service itself is unchanged.
process.on('message', (message: { type?: unknown }) => {
  if (message?.type !== 'memory') return;
  void (async () => {
    const collect = globalThis.gc;
    if (collect) {
      // Twice, a turn apart: finalisers and weak callbacks run by the first free more for the second.
      collect();
      await new Promise((resolve) => setImmediate(resolve));
      collect();
    }
    const report: MemoryReport = { ...process.memoryUsage(), collected: collect !== undefined };
    process.send?.(report);
  })();
});

serveUntilStopped(await app.listen(), () => app.close());
