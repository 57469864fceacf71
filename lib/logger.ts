import pino, { type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout, one logger per process, named after the process. */
export function createLogger(name: string, level: string = 'info'): Logger {
  return pino({
    name,
    level,
    base: { service: name },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['password', '*.password', 'authorization', '*.authorization', 'idToken', '*.idToken', 'refreshToken', '*.refreshToken'],
      censor: '[redacted]',
    },
  });
}
