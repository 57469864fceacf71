import 'dotenv/config';
import { z } from 'zod';
import { commonEnv, databaseEnv, kafkaEnv, loadConfig, ports, nonNegativeInt, redisEnv } from '../lib/config';
import { createLogger } from '../lib/logger';
import { exitOnSignal } from '../lib/shutdown';
import { startBridge, type BridgeOptions } from './bridge';

const bridgeEnv = z
  .object({
    ...commonEnv.shape,
    ...databaseEnv.shape,
    ...redisEnv.shape,
    ...kafkaEnv.shape,
    BRIDGE_PORT: ports.BRIDGE_PORT,
    KAFKA_CONSUMER_GROUP: z.string().min(1).default('fleet-bridge'),
    KAFKA_MAX_WAIT_MS: nonNegativeInt(100).refine((ms) => ms >= 1, 'must be at least 1 (0 busy-polls the broker)'),
    KAFKA_SESSION_TIMEOUT_MS: nonNegativeInt(30_000),
    KAFKA_HEARTBEAT_INTERVAL_MS: nonNegativeInt(3_000),
  })
  .refine((env) => env.KAFKA_HEARTBEAT_INTERVAL_MS < env.KAFKA_SESSION_TIMEOUT_MS, {
    path: ['KAFKA_HEARTBEAT_INTERVAL_MS'],
    message: 'must be lower than KAFKA_SESSION_TIMEOUT_MS (about a third of it)',
  });

export type BridgeEnv = z.infer<typeof bridgeEnv>;

export function bridgeOptionsFromEnv(env: BridgeEnv): BridgeOptions {
  return {
    brokers: env.KAFKA_BROKERS,
    topic: env.KAFKA_TOPIC,
    groupId: env.KAFKA_CONSUMER_GROUP,
    clientId: `${env.KAFKA_CLIENT_ID}-bridge`,
    redisUrl: env.REDIS_URL,
    redisPrefix: env.REDIS_PREFIX,
    databaseUrl: env.APP_DATABASE_URL,
    maxWaitMs: env.KAFKA_MAX_WAIT_MS,
    sessionTimeoutMs: env.KAFKA_SESSION_TIMEOUT_MS,
    heartbeatIntervalMs: env.KAFKA_HEARTBEAT_INTERVAL_MS,
    statusPort: env.BRIDGE_PORT,
  };
}

async function main(): Promise<void> {
  const env = loadConfig(bridgeEnv);
  const logger = createLogger('bridge', env.LOG_LEVEL);
  const onFatal = (error: Error) => {
    logger.fatal({ err: error }, 'bridge cannot continue');
    void stop().finally(() => process.exit(1));
  };
  const starting = startBridge({ ...bridgeOptionsFromEnv(env), onFatal }, logger);
  // A signal during start-up waits for the start to finish (or fail), then stops what started.
  const stop = async () => (await starting.catch(() => undefined))?.stop();
  exitOnSignal(logger, stop);
  await starting;
}

main().catch((error: unknown) => {
  createLogger('bridge').fatal({ err: error }, 'bridge failed to start');
  process.exit(1);
});
