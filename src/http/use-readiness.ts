// GET /readyz: 200 {"status":"ok"} when every dependency answers; 200 {"status":"degraded","down":[…]} when only
// optional ones are down (Redis: the instance still serves); 503 {"status":"down","down":[…]} without a required one.
import { type Plugin, useReadinessCheck } from 'graphql-yoga';

export type ReadinessProbe = () => Promise<void>;

export interface ReadinessProbes {
  /** Without any of these the instance cannot serve: a load balancer should send it nothing (503). */
  readonly required: Record<string, ReadinessProbe>;
  /** Without these it serves in a degraded mode: taking every instance out together would be worse (200). */
  readonly optional?: Record<string, ReadinessProbe>;
}

const PROBE_TIMEOUT_MS = 2000;

async function isDown(probe: ReadinessProbe): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), PROBE_TIMEOUT_MS);
      }),
    ]);
    return false;
  } catch {
    return true;
  } finally {
    clearTimeout(timer);
  }
}

export function useReadiness(probes: ReadinessProbes): Plugin {
  const all = [
    ...Object.entries(probes.required).map(([name, probe]) => ({ name, probe, required: true })),
    ...Object.entries(probes.optional ?? {}).map(([name, probe]) => ({ name, probe, required: false })),
  ];
  return useReadinessCheck({
    endpoint: '/readyz',
    check: async ({ fetchAPI }) => {
      const states = await Promise.all(all.map(async (entry) => ({ ...entry, down: await isDown(entry.probe) })));
      const down = states.filter((state) => state.down);
      const status = down.some((state) => state.required) ? 'down' : down.length ? 'degraded' : 'ok';
      const body = status === 'ok' ? { status } : { status, down: down.map((state) => state.name) };
      return new fetchAPI.Response(JSON.stringify(body), {
        status: status === 'down' ? 503 : 200,
        headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
      });
    },
  });
}
