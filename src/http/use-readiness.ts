// GET /readyz: 200 when every dependency answers, 503 with a JSON body naming what is down.
import { type Plugin, useReadinessCheck } from 'graphql-yoga';

export type ReadinessProbe = () => Promise<void>;

export function useReadiness(probes: Record<string, ReadinessProbe>): Plugin {
  return useReadinessCheck({
    endpoint: '/readyz',
    check: async ({ fetchAPI }) => {
      const entries = await Promise.all(
        Object.entries(probes).map(async ([name, probe]) => {
          try {
            await Promise.race([
              probe(),
              new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 2000).unref()),
            ]);
            return [name, 'up'] as const;
          } catch {
            return [name, 'down'] as const;
          }
        }),
      );
      const checks = Object.fromEntries(entries);
      const down = entries.filter(([, state]) => state === 'down').map(([name]) => name);
      return new fetchAPI.Response(JSON.stringify({ status: down.length ? 'down' : 'up', down, checks }), {
        status: down.length ? 503 : 200,
        headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
      });
    },
  });
}
