// A throwaway redis-server from the system binary, on a free loopback port, with no persistence, in a temp dir.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Redis {
  readonly pid: number;
  readonly url: string;
  stop(): Promise<void>;
}

/** `/usr/bin/redis-server`, else the first `redis-server` on PATH, else undefined. */
export function findRedisServer(): string | undefined {
  const dirs = ['/usr/bin', ...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/bin'];
  return dirs.map((dir) => join(dir, 'redis-server')).find((path) => path.startsWith('/') && existsSync(path));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Starts redis-server and waits (at most `timeoutMs`) until it accepts connections. */
export async function startRedis(binary: string, timeoutMs = 10_000): Promise<Redis> {
  const dir = mkdtempSync(join(tmpdir(), 'auth-bench-redis-'));
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  const child = spawn(binary, args, { stdio: 'ignore' });
  let spawnError: Error | undefined;
  child.once('error', (error) => {
    spawnError = error;
  });
  const stop = async () => {
    if (!spawnError) await stopProcess(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + timeoutMs;
    while (!(await accepts(port))) {
      if (spawnError) throw spawnError;
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`redis-server exited (${child.signalCode ?? child.exitCode})`);
      }
      if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} in ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { pid: child.pid as number, url: `redis://127.0.0.1:${port}`, stop };
}
