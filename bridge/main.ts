import 'dotenv/config';
import { z } from 'zod';
import { commonEnv, databaseEnv, hostEnv, kafkaEnv, lifecycleEnv, loadConfig, ports, nonNegativeInt, redisEnv } from '../lib/config';
import { runService } from '../lib/service';
import { startBridge, type BridgeOptions } from './bridge';

const bridgeEnv = z
  .object({
    ...commonEnv.shape,
    ...databaseEnv.shape,
    ...lifecycleEnv.shape,
    ...hostEnv.shape,
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
    statusHost: env.HOST,
  };
}

/**
 * kafkajs' disconnect waits for the fetch in hand, and while the broker is unreachable that fetch
 * retries for minutes: leaving the group gets this share of the shutdown bound, then the process
 * exits without it. Nothing is lost: an offset is resolved only after Redis acknowledged its
 * message, and the broker hands the partitions on after the session timeout.
 */
const LEAVE_SHARE_OF_SHUTDOWN = 0.5;

const env = loadConfig(bridgeEnv);

runService('bridge', env, async (logger, life) => {
  const bridge = await startBridge({ ...bridgeOptionsFromEnv(env), onFatal: (error) => life.fail(error) }, logger);
  return async () => {
    const leaveMs = Math.floor(env.SHUTDOWN_TIMEOUT_MS * LEAVE_SHARE_OF_SHUTDOWN);
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<'gave up'>((resolve) => (timer = setTimeout(() => resolve('gave up'), leaveMs)));
    const outcome = await Promise.race([bridge.stop().then(() => 'left' as const), gaveUp]);
    clearTimeout(timer);
    if (outcome === 'gave up') logger.warn({ leaveMs }, 'could not leave the consumer group in time (Kafka unreachable?); exiting without it');
  };
});
