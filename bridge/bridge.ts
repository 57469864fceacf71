import type { RetryOptions } from 'kafkajs';
import type { Registry } from 'prom-client';
import { createDatabase } from '../lib/database';
import { createMetricsRegistry, startStatusServer } from '../lib/health';
import type { Logger } from '../lib/logger';
import { KafkaLocationConsumer } from './kafkaConsumer';
import type { BackoffOptions } from '../lib/backoff';
import { LocationBridge, type BridgeObserver } from './locationBridge';
import { BridgeMetrics } from './metrics';
import { PostgresLocationAcceptor } from './postgresAcceptor';
import { RedisLocationPublisher } from './redisPublisher';

/**
 * The bridge: Kafka topic → Redis channels (see README.md). `startBridge` is the programmatic API
 * (tests, benchmarks); `main.ts` loads the environment and calls it.
 */

export interface BridgeOptions {
  brokers: string[];
  topic: string;
  /** Consumer group shared by every replica; partitions are split among its members. */
  groupId: string;
  clientId: string;
  redisUrl: string;
  /** Channel prefix; required, see `lib/channels.ts`. */
  redisPrefix: string;
  /** fleet_app's connection: locations other producers put on the topic without a `seq` are accepted there. */
  databaseUrl: string;
  /** Longest time the broker may hold an empty fetch (kafkajs `maxWaitTimeInMs`). */
  maxWaitMs: number;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** Port of `/health` and `/metrics`; 0 picks a free one (see `Bridge.statusUrl`). */
  statusPort: number;
  statusHost?: string;
  /** Start a group without committed offsets at the earliest message. Default true. */
  fromBeginning?: boolean;
  /** Messages per Redis pipeline and commit step. Default 500. */
  chunkSize?: number;
  /** Retry backoff while Redis or the DLQ is unavailable. Default 100 ms doubling to 5 s, jittered. */
  deliveryBackoff?: BackoffOptions;
  /** Overrides of kafkajs' retry settings (`DEFAULT_KAFKA_RETRY`). */
  kafkaRetry?: RetryOptions;
  /** Registry for the bridge's metrics; default a new one with the process metrics. */
  registry?: Registry;
  /** Called if the consumer crashes beyond kafkajs' restart (a non-retriable error). */
  onFatal?: (error: Error) => void;
}

export interface Bridge {
  /** Resolves when the consumer has joined its group for the first time. */
  ready: Promise<void>;
  /** Base URL of the status server (`/health`, `/metrics`). */
  statusUrl: string;
  metrics: BridgeMetrics;
  registry: Registry;
  /** What `/health` answers: in the group and Redis ready. */
  isHealthy(): boolean;
  /** Leaves the group, closes Redis and the status server. Idempotent. */
  stop(): Promise<void>;
}

export async function startBridge(options: BridgeOptions, logger: Logger): Promise<Bridge> {
  const registry = options.registry ?? createMetricsRegistry('bridge');
  const publisher = new RedisLocationPublisher({ url: options.redisUrl, prefix: options.redisPrefix }, logger.child({ component: 'redis' }));
  // Two connections: one chunk at a time per partition, and unsequenced locations are rare.
  const db = createDatabase({ url: options.databaseUrl, poolSize: 2 });
  let consumer: KafkaLocationConsumer | undefined;
  const metrics = new BridgeMetrics(registry, {
    isGroupMember: () => consumer?.isGroupMember() ?? false,
    isRedisReady: () => publisher.isReady(),
  });
  const isHealthy = () => (consumer?.isGroupMember() ?? false) && publisher.isReady();

  let status: Awaited<ReturnType<typeof startStatusServer>> | undefined;
  const closeAll = async () => {
    await consumer?.stop().catch((error: unknown) => logger.warn({ err: error }, 'kafka consumer stop failed'));
    await publisher.close();
    await db.close();
    await status?.close();
  };

  try {
    consumer = new KafkaLocationConsumer(
      {
        brokers: options.brokers,
        clientId: options.clientId,
        groupId: options.groupId,
        topic: options.topic,
        maxWaitMs: options.maxWaitMs,
        sessionTimeoutMs: options.sessionTimeoutMs,
        heartbeatIntervalMs: options.heartbeatIntervalMs,
        fromBeginning: options.fromBeginning,
        chunkSize: options.chunkSize,
        deliveryBackoff: options.deliveryBackoff,
        retry: options.kafkaRetry,
      },
      logger.child({ component: 'kafka' }),
      { metrics, onFatal: options.onFatal },
    );
    const bridge = new LocationBridge({
      publisher,
      acceptor: new PostgresLocationAcceptor(db),
      deadLetters: consumer.deadLetters,
      observer: observe(metrics, logger),
    });
    status = await startStatusServer({
      port: options.statusPort,
      host: options.statusHost,
      registry,
      checks: { kafka: () => consumer?.isGroupMember() ?? false, redis: () => publisher.isReady() },
    });
    await consumer.start(bridge);
  } catch (error) {
    await closeAll();
    throw error;
  }

  logger.info({ topic: options.topic, groupId: options.groupId, status: status.url }, 'bridge started');
  let stopping: Promise<void> | undefined;
  return {
    ready: consumer.joined,
    statusUrl: status.url,
    metrics,
    registry,
    isHealthy,
    stop: () => (stopping ??= closeAll()),
  };
}

/** Metrics plus the log lines an operator needs: what was dead-lettered, and retries (throttled). */
function observe(metrics: BridgeMetrics, logger: Logger): BridgeObserver {
  return {
    published: (count, durationMs, messages) => metrics.published(count, durationMs, messages),
    accepted: (outcome) => metrics.accepted(outcome),
    deadLettered: (letters) => {
      metrics.deadLettered(letters);
      logger.warn({ count: letters.length, first: { reason: letters[0]?.reason, source: letters[0]?.source } }, 'invalid messages moved to the dead-letter topic');
    },
    failed: (error, attempt) => {
      metrics.failed();
      // The first failure, then every tenth retry of the same chunk.
      if (attempt === 1 || attempt % 10 === 0) logger.warn({ err: error, attempt }, 'could not hand off a chunk; retrying with backoff');
    },
  };
}
