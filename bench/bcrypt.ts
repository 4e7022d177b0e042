// Bench child: raw bcrypt.compare throughput, a fixed number in flight for a fixed time; prints one JSON result line.
import bcrypt from 'bcrypt';
import { meterThreads } from './cpu.ts';

export interface BcryptResult {
  readonly compares: number;
  readonly seconds: number;
  readonly p50: number;
  readonly p99: number;
  /** CPU time (ms) per compare of each group of this process's threads (bench/cpu.ts meterThreads). */
  readonly cpuPerCompare: Record<string, number>;
}

const cost = Number(process.env.BCRYPT_COST ?? 10);
const inFlight = Number(process.env.BCRYPT_IN_FLIGHT ?? 8);
const seconds = Number(process.env.BCRYPT_SECONDS ?? 8);
const password = process.env.BCRYPT_PASSWORD ?? 'correct horse battery';

const hash = await bcrypt.hash(password, cost);
await Promise.all(Array.from({ length: inFlight }, () => bcrypt.compare(password, hash))); // warm-up

const latencies: number[] = [];
const threads = meterThreads(process.pid);
const started = performance.now();
const end = started + seconds * 1000;
await Promise.all(
  Array.from({ length: inFlight }, async () => {
    while (performance.now() < end) {
      const start = performance.now();
      if (!(await bcrypt.compare(password, hash))) throw new Error('bcrypt.compare returned false');
      latencies.push(performance.now() - start);
    }
  }),
);
const used = threads();
latencies.sort((a, b) => a - b);
const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
const result: BcryptResult = {
  compares: latencies.length,
  seconds: (performance.now() - started) / 1000,
  p50: at(0.5),
  p99: at(0.99),
  cpuPerCompare: Object.fromEntries([...used].map(([group, ms]) => [group, ms / latencies.length])),
};
process.stdout.write(`${JSON.stringify(result)}\n`);
