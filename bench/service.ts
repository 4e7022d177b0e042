// Bench child: the real service, built by createApp from the environment exactly as src/main.ts does.
import { readFileSync } from 'node:fs';
import { createApp } from '../src/app.ts';
import { clientInfoOf } from '../src/clients/registry.ts';
import { hashClientSecret, newClientSecret } from '../src/clients/secret.ts';
import { loadConfig } from '../src/config.ts';
import { Client } from '../src/db/entities.ts';
import { serveUntilStopped } from './children.ts';

/** The answer to `{ type: 'memory' }` over IPC: process.memoryUsage() after full collections when --expose-gc. */
export interface MemoryReport extends NodeJS.MemoryUsage {
  readonly collected: boolean;
}

/** The answer to `{ type: 'client' }`: a CONFIDENTIAL client made for the client-credentials row, and its secret. */
export interface BenchClient {
  readonly id: string;
  readonly secret: string;
}

const app = await createApp(loadConfig(process.env, (path) => readFileSync(path, 'utf8')));

// Bench-only, over the parent's IPC channel rather than an HTTP endpoint, so the service itself is unchanged.
process.on('message', (message: { type?: unknown; id?: string; scopes?: string[] }) => {
  if (message?.type === 'client') {
    void createBenchClient(message.id, message.scopes).then((client) => process.send?.(client));
    return;
  }
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

/**
 * Writes the row as createClient would, and tells the registry (no admin account needed). `{ type: 'client' }` makes
 * the client-credentials row's client; the verifier rows ask for their own id and `['sessions:feed']`.
 */
async function createBenchClient(id = 'bench-service', scopes = ['users:read']): Promise<BenchClient> {
  const secret = newClientSecret();
  const now = new Date();
  const em = app.orm.em.fork();
  const row = em.create(Client, {
    id,
    name: id,
    type: 'CONFIDENTIAL',
    secretHash: hashClientSecret(secret),
    audiences: '[]',
    redirectUris: '[]',
    allowedOrigins: '[]',
    scopes: JSON.stringify(scopes),
    disabled: false,
    tokensRevokedAt: null,
    tokensRevokedReason: null,
    createdAt: now,
    updatedAt: now,
  });
  await em.flush();
  await app.bus.publishClientChanged(clientInfoOf(row));
  return { id: row.id, secret };
}

serveUntilStopped(await app.listen(), () => app.close());
