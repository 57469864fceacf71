import { createLogger, type Logger } from './logger';
import { armShutdown } from './shutdown';

/**
 * The life of one process: arm the shutdown (signals, and stdin's end when supervised), start,
 * log a fatal start-up failure and exit 1, otherwise stop gracefully within SHUTDOWN_TIMEOUT_MS.
 * `start` returns the function that stops what it started; `fail` stops the process with exit 1
 * (a dependency failed beyond repair after start-up).
 */
export interface ServiceConfig {
  LOG_LEVEL: string;
  SHUTDOWN_TIMEOUT_MS: number;
  STOP_WHEN_STDIN_CLOSES: boolean;
}

export interface ServiceLife {
  fail(error: Error): void;
}

export function runService(
  name: string,
  config: ServiceConfig,
  start: (logger: Logger, life: ServiceLife) => Promise<() => Promise<void>>,
  options: { stopSignals?: readonly NodeJS.Signals[] } = {},
): void {
  const logger = createLogger(name, config.LOG_LEVEL);
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));
  const shutdown = armShutdown(logger, { timeoutMs: config.SHUTDOWN_TIMEOUT_MS, stopWhenStdinCloses: config.STOP_WHEN_STDIN_CLOSES, signals: options.stopSignals });
  const life: ServiceLife = {
    fail: (error) => {
      logger.fatal({ err: error }, `${name} cannot continue`);
      shutdown.begin('fatal error', 1);
    },
  };
  start(logger, life).then(
    (stop) => shutdown.started(stop),
    (error: unknown) => {
      logger.fatal({ err: error }, `${name} failed to start`);
      process.exit(1);
    },
  );
}
