import type { Logger } from './logger';

/**
 * The end of a process's life, armed before it starts anything: the first SIGINT/SIGTERM/SIGHUP
 * (or, when asked, the end of stdin) runs `stop` once (stop accepting, drain, close connections)
 * and exits 0; exit 1 if stopping fails or outlasts `timeoutMs`, whatever it is waiting for (a
 * broker that no longer answers retries for minutes). A second signal while stopping exits at once.
 *
 * A signal during start-up exits at once: nothing is served yet, and start-up itself can wait on
 * a dependency for as long as that dependency is away (kafkajs retries a lost broker for minutes).
 */
export interface ShutdownOptions {
  timeoutMs: number;
  /** The signals that stop the process. Default SIGINT, SIGTERM, SIGHUP (a process that gives SIGHUP a meaning of its own leaves it out). */
  signals?: readonly NodeJS.Signals[];
  /** Also stop when stdin ends: the parent holding its write end is gone (see lifecycleEnv). */
  stopWhenStdinCloses?: boolean;
}

export interface Shutdown {
  /** Start-up finished: from now on, stopping runs `stop`. */
  started(stop: () => Promise<void>): void;
  /** Stop now (e.g. a fatal error), then exit with `exitCode`. Ignored once stopping. */
  begin(reason: string, exitCode?: number): void;
}

const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export function armShutdown(logger: Logger, options: ShutdownOptions): Shutdown {
  let stop: (() => Promise<void>) | undefined;
  let stopping = false;

  const begin = (reason: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    if (!stop) {
      logger.info({ reason }, 'stopping during start-up; nothing is served yet');
      process.exit(exitCode);
    }
    logger.info({ reason }, 'stopping');
    setTimeout(() => {
      logger.error({ timeoutMs: options.timeoutMs }, 'shutdown timed out');
      process.exit(1);
    }, options.timeoutMs);
    stop().then(
      () => {
        logger.info('stopped');
        process.exit(exitCode);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };

  for (const signal of options.signals ?? SIGNALS) {
    process.on(signal, () => {
      if (!stopping) return begin(signal);
      logger.warn({ signal }, 'second signal while stopping; exiting now');
      process.exit(1);
    });
  }
  if (options.stopWhenStdinCloses) {
    const parentGone = () => begin('stdin closed: the parent process is gone');
    process.stdin.on('end', parentGone);
    process.stdin.on('close', parentGone);
    process.stdin.on('error', parentGone);
    process.stdin.resume();
  }

  return {
    started: (stopFn) => {
      stop = stopFn;
    },
    begin,
  };
}
