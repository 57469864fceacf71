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
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
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
});

export const callerEnv = z.object({
  /** HMAC key shared by the gateway and the subgraphs to sign the caller header. */
  CALLER_SIGNING_SECRET: z.string().min(32, 'CALLER_SIGNING_SECRET must be at least 32 characters'),
});

export const ports = {
  GATEWAY_PORT: port(4000),
  AUTH_PORT: port(4001),
  TENANT_PORT: port(4002),
  LOCATION_PORT: port(4003),
  BRIDGE_PORT: port(4004),
};

export { port, nonNegativeInt, url };

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid configuration:\n  ${issues.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment against a schema; throws one error listing every bad variable. */
export function parseConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  // `NAME=` in a .env file means "not set", as it does for the defaults in .env.example.
  const given = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const result = schema.safeParse(given);
  if (result.success) return result.data;
  throw new ConfigError(result.error.issues.map((issue) => `${issue.path.join('.') || '(env)'}: ${issue.message}`));
}

/** For entrypoints: parse, or print the problems and exit 1 before anything starts. */
export function loadConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  try {
    return parseConfig(schema, env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}
