import type { WorkerMessage } from './workers';

/**
 * The child's side of a bench worker (see workers.ts): waits for its input, runs, and reports an
 * uncaught failure as a `failed` message before exiting, so the runner sees why instead of a hang.
 */
export interface RunnerChannel {
  send(message: WorkerMessage): void;
  /** Every message of this type from the runner. */
  on(type: string, handler: (message: WorkerMessage) => void | Promise<void>): void;
}

export function runWorker<I>(main: (input: I, runner: RunnerChannel) => Promise<void>): void {
  const handlers = new Map<string, (message: WorkerMessage) => void | Promise<void>>();
  const send = (message: WorkerMessage) => {
    if (process.connected) process.send?.(message);
  };
  const fail = (error: unknown) => {
    send({ type: 'failed', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    setTimeout(() => process.exit(1), 50).unref();
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  // The runner going away (crash, watchdog) ends the worker too: it is bounded by its runner.
  process.on('disconnect', () => process.exit(0));
  process.on('message', (raw) => {
    const message = raw as WorkerMessage;
    if (message.type === 'start') {
      main(message.input as I, { send, on: (type, handler) => handlers.set(type, handler) }).catch(fail);
      return;
    }
    const handler = handlers.get(message.type);
    if (handler) Promise.resolve(handler(message)).catch(fail);
  });
}
