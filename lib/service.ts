import { createLogger, type Logger } from './logger';
import { exitOnSignal } from './shutdown';

/**
 * The life of one process: start it, log a fatal start-up failure and exit 1, otherwise stop it
 * gracefully on SIGINT/SIGTERM. `start` returns the function that stops what it started.
 */
export function runService(name: string, logLevel: string, start: (logger: Logger) => Promise<() => Promise<void>>): void {
  const logger = createLogger(name, logLevel);
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));
  start(logger).then(
    (stop) => exitOnSignal(logger, stop),
    (error: unknown) => {
      logger.fatal({ err: error }, `${name} failed to start`);
      process.exit(1);
    },
  );
}
