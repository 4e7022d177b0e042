// The share of the machine's CPU that went to processes outside the bench while a row ran (Linux /proc).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/** Linux reports process times in ticks of 1/100 s (USER_HZ). */
const TICK_MS = 10;

const machineBusyMs = () => cpus().reduce((sum, { times }) => sum + times.user + times.nice + times.sys + times.irq, 0);

/** User plus system time of a process and all its threads; 0 once it has gone. */
function processMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (command) ", the state is field 3: utime and stime (fields 14 and 15) are at 11 and 12.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

/**
 * Starts metering; the returned function gives the fraction (0 to 1) of all CPUs used by processes other than
 * `pids()` (asked at both ends, so a child started in between counts as ours) since the start, or undefined off Linux.
 */
export function meterOtherCpu(pids: () => number[]): () => number | undefined {
  if (!existsSync('/proc/self/stat')) return () => undefined;
  const ownMs = () => new Map(pids().map((pid) => [pid, processMs(pid)]));
  const start = { at: performance.now(), machine: machineBusyMs(), own: ownMs() };
  return () => {
    let own = 0;
    for (const [pid, ms] of ownMs()) own += ms - (start.own.get(pid) ?? 0);
    const other = machineBusyMs() - start.machine - own;
    return Math.max(0, other) / ((performance.now() - start.at) * cpus().length);
  };
}

/** A thread's group as the table prints it: its name from /proc, the main thread as `main`. */
function threadGroup(pid: number, tid: string, comm: string): string {
  if (tid === String(pid)) return 'main';
  // libuv's pool threads are `libuv-worker`; V8's platform threads `V8Worker` and `DelayedTaskSch…`.
  if (comm.startsWith('libuv')) return 'libuv pool';
  if (comm.startsWith('V8') || comm.startsWith('DelayedTask')) return 'V8 workers';
  return 'other';
}

/** User plus system CPU time (ms) of each of `pid`'s threads that is still running, by group; empty off Linux. */
function threadsMs(pid: number): Map<string, number> {
  const groups = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return groups;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const group = threadGroup(pid, tid, comm);
      groups.set(group, (groups.get(group) ?? 0) + (Number(fields[11]) + Number(fields[12])) * TICK_MS);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return groups;
}

/**
 * Starts metering a whole process (every thread; e.g. a database server); the returned function gives the CPU time
 * (ms) it used since the start, at tick resolution (10 ms), or 0 off Linux.
 */
export function meterProcess(pid: number): () => number {
  const start = processMs(pid);
  return () => processMs(pid) - start;
}

/**
 * Starts metering `pid`'s threads; the returned function gives the CPU time (ms) each group of threads (`main`,
 * `libuv pool`, `V8 workers`, `other`) used since the start. Tick resolution (10 ms): meter seconds, not requests.
 */
export function meterThreads(pid: number): () => Map<string, number> {
  const start = threadsMs(pid);
  return () => {
    const used = new Map<string, number>();
    for (const [group, ms] of threadsMs(pid)) used.set(group, ms - (start.get(group) ?? 0));
    return used;
  };
}
