// Child processes of the bench: started by the parent, each prints one JSON line; servers run until told to stop.
import { type ChildProcess, spawn } from 'node:child_process';
import type { Server } from 'node:http';
import { createInterface } from 'node:readline';

export interface Child<T> {
  readonly pid: number;
  /** The JSON line the child printed first (a server's URL, a measurement's result). */
  readonly message: T;
  /** Sends `message` over the IPC channel and resolves with the child's next message (one question at a time). */
  ask<R>(message: unknown, timeoutMs?: number): Promise<R>;
  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  stop(): Promise<void>;
}

const exited = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });

/** Runs `script` on this Node with `env` and waits (at most `timeoutMs`) for the first line it prints. */
export async function startChild<T>(
  script: string,
  env: NodeJS.ProcessEnv,
  options: { execArgv?: string[]; timeoutMs?: number } = {},
): Promise<Child<T>> {
  const child = spawn(process.execPath, [...(options.execArgv ?? []), script], {
    env,
    // The IPC channel is a lifeline: when the parent dies, the child sees `disconnect` and stops.
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited(child);
    clearTimeout(timer);
  };
  const ask = <R>(message: unknown, askTimeoutMs = 30_000) =>
    new Promise<R>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      const onMessage = (reply: unknown) => {
        done();
        resolve(reply as R);
      };
      const onExit = () => {
        done();
        reject(new Error(`${script} exited before answering ${JSON.stringify(message)}`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${script} did not answer ${JSON.stringify(message)} in ${askTimeoutMs} ms`));
      }, askTimeoutMs);
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send(message as object, (error) => {
        if (!error) return;
        done();
        reject(error);
      });
    });
  const timeoutMs = options.timeoutMs ?? 30_000;
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
      const timer = setTimeout(() => reject(new Error(`${script} printed nothing in ${timeoutMs} ms`)), timeoutMs);
      lines.once('line', (text) => {
        clearTimeout(timer);
        resolve(text);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${script} exited (${signal ?? code}) before printing its first line`));
      });
      child.once('error', reject);
    });
    return { pid: child.pid as number, message: JSON.parse(line) as T, ask, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** In a server child: prints `{ url }` and closes the server on SIGTERM, SIGINT or the parent's disconnect. */
export function serveUntilStopped(url: string, close: () => Promise<void>): void {
  process.stdout.write(`${JSON.stringify({ url })}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(1), 5000).unref();
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  for (const event of ['SIGTERM', 'SIGINT', 'disconnect'] as const) process.once(event, stop);
}

/**
 * In a server child: listens with `server` on a free port of 127.0.0.1, then serves it as serveUntilStopped does,
 * closing its connections and itself (then `alsoClose`, e.g. a database) when told to stop.
 */
export async function listenUntilStopped(server: Server, alsoClose?: () => Promise<void>): Promise<void> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  serveUntilStopped(`http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`, async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await alsoClose?.();
  });
}
