import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

/**
 * Bench workers: load generators, subscribers and publishers, each in a child process of its own
 * (never in a platform process, never in the runner), started with node + tsx's loader directly
 * (one process, no tsx CLI in between) in a process group of its own, so stopping it stops
 * everything it started. Runner and worker talk over the IPC channel in `{ type, ... }` messages.
 */
export interface WorkerMessage {
  type: string;
  [key: string]: unknown;
}

export interface Worker {
  readonly name: string;
  readonly pid: number;
  /** The next message of this type (messages that arrive before anyone waits are kept). */
  next<T extends WorkerMessage = WorkerMessage>(type: string, timeoutMs: number): Promise<T>;
  send(message: WorkerMessage): void;
  /** Resolves when the process has exited (SIGTERM to its group, SIGKILL after 3 s). */
  stop(): Promise<void>;
}

const ROOT = path.resolve(__dirname, '..');

export function startWorker(script: string, input: unknown, options: { name: string; log: (line: string) => void }): Worker {
  const child: ChildProcess = fork(path.resolve(ROOT, script), [], {
    cwd: ROOT,
    execArgv: ['--import', 'tsx'],
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) createInterface({ input: stream }).on('line', (line) => options.log(`${options.name} | ${line}`));
  }
  const inbox = new Map<string, WorkerMessage[]>();
  const waiting = new Map<string, Array<(message: WorkerMessage) => void>>();
  let failure: Error | null = null;
  const failed = new Set<(error: Error) => void>();
  const fail = (error: Error) => {
    failure ??= error;
    for (const reject of failed) reject(failure);
    failed.clear();
  };
  child.on('message', (raw) => {
    const message = raw as WorkerMessage;
    if (message.type === 'failed') return fail(new Error(`${options.name}: ${String(message.message)}`));
    const list = waiting.get(message.type);
    if (list?.length) list.shift()!(message);
    else inbox.set(message.type, [...(inbox.get(message.type) ?? []), message]);
  });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      fail(new Error(`${options.name} exited (${signal ?? code}) before answering`));
      resolve();
    }),
  );
  child.send({ type: 'start', input });

  return {
    name: options.name,
    pid: child.pid!,
    next: <T extends WorkerMessage>(type: string, timeoutMs: number) =>
      new Promise<T>((resolve, reject) => {
        const kept = inbox.get(type);
        if (kept?.length) return resolve(kept.shift() as T);
        if (failure) return reject(failure);
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${options.name}: no '${type}' within ${timeoutMs} ms`));
        }, timeoutMs);
        const onFail = (error: Error) => {
          clearTimeout(timer);
          reject(error);
        };
        const deliver = (message: WorkerMessage) => {
          done();
          resolve(message as T);
        };
        const done = () => {
          clearTimeout(timer);
          failed.delete(onFail);
          const list = waiting.get(type) ?? [];
          const at = list.indexOf(deliver);
          if (at >= 0) list.splice(at, 1);
        };
        failed.add(onFail);
        waiting.set(type, [...(waiting.get(type) ?? []), deliver]);
      }),
    send: (message) => {
      if (child.connected) child.send(message);
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const group = -child.pid!;
      try {
        process.kill(group, 'SIGTERM');
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          process.kill(group, 'SIGKILL');
        } catch {
          // already gone
        }
      }, 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
