// GET /readyz: 200 {"status":"ok"} when every dependency answers; 200 {"status":"degraded","down":[…]} when only
// optional ones are down (Redis: the instance still serves); 503 {"status":"down","down":[…]} without a required one.
import type { Plugin } from 'graphql-yoga';

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
  const answer = async (fetchAPI: { Response: typeof Response }) => {
    const states = await Promise.all(all.map(async (entry) => ({ ...entry, down: await isDown(entry.probe) })));
    const down = states.filter((state) => state.down);
    const status = down.some((state) => state.required) ? 'down' : down.length ? 'degraded' : 'ok';
    const body = status === 'ok' ? { status } : { status, down: down.map((state) => state.name) };
    return new fetchAPI.Response(JSON.stringify(body), {
      status: status === 'down' ? 503 : 200,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    });
  };
  // Not Yoga's useReadinessCheck: it tests a URLPattern against every other request (a few percent of each).
  return {
    onRequest({ url, fetchAPI, endResponse }) {
      if (url.pathname !== '/readyz') return;
      return answer(fetchAPI).then(endResponse);
    },
  };
}
