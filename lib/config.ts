import { z } from 'zod';

/**
 * Environment variables, read and validated once per process at start-up (each `main.ts` calls
 * `loadConfig` with the parts it needs). Modules below the entrypoints take typed options and never
 * read `process.env` themselves. Every variable is listed, with a working local default, in
 * `.env.example`.
 */

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const nonNegativeInt = (fallback: number) => z.coerce.number().int().min(0).default(fallback);
const url = (fallback: string) => z.string().url().default(fallback);

export const commonEnv = z.object({
  /**
   * Unset, `development` or `test`: development (`npm run dev`, the tests). Anything else, e.g.
   * `production` (the Dockerfile and docker-compose.yml), turns on `deploymentIssues` below.
   */
  NODE_ENV: z.string().default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** How a long-running process is supervised (lib/service.ts). */
export const lifecycleEnv = z.object({
  /**
   * Stop (gracefully, within the shutdown bound) when standard input reaches its end. The dev
   * runner sets it and keeps the write end of each child's stdin: when the runner dies in any way,
   * even by SIGKILL, the pipe closes and its children stop instead of living on as orphans.
   */
  STOP_WHEN_STDIN_CLOSES: z.stringbool().default(false),
  /**
   * How long a graceful stop may take before the process exits 1 anyway. Keep it below the
   * orchestrator's grace period (docker-compose.yml: stop_grace_period 20s).
   */
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(1).default(10_000),
});

/** Where the processes without a public API (subgraphs, the bridge's status port) listen. */
export const hostEnv = z.object({
  /** Loopback by default: only the gateway is public. Containers set 0.0.0.0 (docker-compose.yml). */
  HOST: z.string().min(1).default('127.0.0.1'),
});

export const databaseEnv = z.object({
  /** The application's connection: a role the row-level security policies bind (see prisma/README). */
  APP_DATABASE_URL: url('postgresql://fleet_app:fleet_app@127.0.0.1:5432/fleet'),
});

export const redisEnv = z.object({
  REDIS_URL: url('redis://127.0.0.1:6379'),
  REDIS_PREFIX: z.string().min(1).default('fleet:'),
});

export const kafkaEnv = z.object({
  KAFKA_BROKERS: z
    .string()
    .min(1, 'KAFKA_BROKERS must list at least one host:port (npm run dev starts a local broker when it is unset)')
    .transform((value) => value.split(',').map((b) => b.trim()).filter(Boolean)),
  KAFKA_TOPIC: z.string().min(1).default('locations'),
  KAFKA_CLIENT_ID: z.string().min(1).default('fleet'),
});

export const cognitoEnv = z.object({
  AWS_REGION: z.string().min(1).default('us-east-1'),
  COGNITO_USER_POOL_ID: z.string().min(1, 'COGNITO_USER_POOL_ID is required'),
  COGNITO_CLIENT_ID: z.string().min(1, 'COGNITO_CLIENT_ID is required'),
  /** Set only for a local emulator (cognito-local); unset means real Cognito in AWS_REGION. */
  COGNITO_ENDPOINT: z.string().url().optional().or(z.literal('').transform(() => undefined)),
  /** Outside development, COGNITO_ENDPOINT is refused unless this says the emulator is meant. */
  ALLOW_COGNITO_EMULATOR: z.stringbool().default(false),
});

/** Bytes, not characters: the HMAC key is the UTF-8 encoding of the string. */
const MIN_SECRET_BYTES = 32;

export const callerEnv = z.object({
  /** HMAC key shared by the gateway and the subgraphs to sign the caller header. */
  CALLER_SIGNING_SECRET: z
    .string()
    .refine((secret) => Buffer.byteLength(secret, 'utf8') >= MIN_SECRET_BYTES, `CALLER_SIGNING_SECRET must be at least ${MIN_SECRET_BYTES} bytes (UTF-8)`),
});

export const ports = {
  GATEWAY_PORT: port(4000),
  AUTH_PORT: port(4001),
  TENANT_PORT: port(4002),
  LOCATION_PORT: port(4003),
  BRIDGE_PORT: port(4004),
  /** The gateway's /metrics (and an internal /health), on HOST, never on the public port. */
  GATEWAY_METRICS_PORT: port(4005),
};

/**
 * Values this repository ships (.env.example, tools/localStack.ts, docker-compose.yml): public,
 * so they are no secret anywhere but on a developer's machine.
 */
export const EXAMPLE_SECRETS = {
  CALLER_SIGNING_SECRET: 'local-development-only-caller-signing-secret',
  ADMIN_PASSWORD: 'change-me-please',
  /** The password of `fleet_app` in APP_DATABASE_URL. */
  FLEET_APP_PASSWORD: 'fleet_app',
} as const;

const DEVELOPMENT = new Set(['development', 'test']);

export function isDevelopment(nodeEnv: string | undefined): boolean {
  return nodeEnv === undefined || nodeEnv === '' || DEVELOPMENT.has(nodeEnv);
}

/**
 * Outside development, refuse what would let anyone in: the example caller-signing secret (anyone
 * who reaches a subgraph could sign an ADMIN caller), the example admin and database passwords,
 * and the Cognito emulator, whose signing key ships in its npm package, unless explicitly allowed.
 * Checked on the parsed configuration, so only the variables a process reads are judged.
 */
export function deploymentIssues(config: Record<string, unknown>, nodeEnv: string | undefined): string[] {
  if (isDevelopment(nodeEnv)) return [];
  const why = `(NODE_ENV=${nodeEnv}; only development may use the values this repository ships)`;
  const issues: string[] = [];
  if (config.CALLER_SIGNING_SECRET === EXAMPLE_SECRETS.CALLER_SIGNING_SECRET) {
    issues.push(`CALLER_SIGNING_SECRET: is the example secret ${why}; generate one: openssl rand -base64 48`);
  }
  if (config.ADMIN_PASSWORD === EXAMPLE_SECRETS.ADMIN_PASSWORD) {
    issues.push(`ADMIN_PASSWORD: is the example password ${why}`);
  }
  if (typeof config.APP_DATABASE_URL === 'string' && decodeURIComponent(new URL(config.APP_DATABASE_URL).password) === EXAMPLE_SECRETS.FLEET_APP_PASSWORD) {
    issues.push(`APP_DATABASE_URL: carries the example password of fleet_app ${why}`);
  }
  // Judged where tokens are trusted (the processes reading cognitoEnv), not in cognito-init, which
  // exists only to set the emulator up.
  if ('ALLOW_COGNITO_EMULATOR' in config && config.COGNITO_ENDPOINT && config.ALLOW_COGNITO_EMULATOR !== true) {
    issues.push(
      `COGNITO_ENDPOINT: points at a Cognito emulator, whose token-signing key is public ${why}; ` +
        'unset it for real Cognito, or set ALLOW_COGNITO_EMULATOR=true for a local try-out',
    );
  }
  return issues;
}

/** What is allowed outside development but deserves to be loud. */
export function deploymentWarnings(config: Record<string, unknown>, nodeEnv: string | undefined): string[] {
  if (isDevelopment(nodeEnv) || !config.COGNITO_ENDPOINT || config.ALLOW_COGNITO_EMULATOR !== true) return [];
  return [
    `WARNING: COGNITO_ENDPOINT=${String(config.COGNITO_ENDPOINT)} is a Cognito emulator (ALLOW_COGNITO_EMULATOR=true): ` +
      'anyone can mint tokens it accepts. Never expose this deployment.',
  ];
}

export { port, nonNegativeInt, url };

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid configuration:\n  ${issues.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parses the environment against a schema, then `deploymentIssues`; throws one error listing
 * every bad variable.
 */
export function parseConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  // `NAME=` in a .env file means "not set", as it does for the defaults in .env.example.
  const given = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const result = schema.safeParse(given);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => `${issue.path.join('.') || '(env)'}: ${issue.message}`));
  }
  const issues = deploymentIssues(result.data as Record<string, unknown>, given.NODE_ENV);
  if (issues.length > 0) throw new ConfigError(issues);
  return result.data;
}

/** For entrypoints: parse, or print the problems and exit 1 before anything starts. */
export function loadConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  try {
    const config = parseConfig(schema, env);
    for (const warning of deploymentWarnings(config as Record<string, unknown>, env.NODE_ENV || undefined)) process.stderr.write(`${warning}\n`);
    return config;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}
