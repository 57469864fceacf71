import type { Logger } from './logger';

/**
 * Graceful shutdown for an entrypoint: on SIGINT/SIGTERM run `stop` once (stop accepting, drain,
 * close connections), then exit 0; exit 1 if stopping fails or takes longer than `timeoutMs`.
 * A second signal while stopping exits at once.
 */
export function exitOnSignal(logger: Logger, stop: () => Promise<void>, timeoutMs = 10_000): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal while stopping; exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs }, 'shutdown timed out');
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    stop().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
