import 'dotenv/config';
import { Redis } from 'ioredis';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { callerEnv, commonEnv, hostEnv, lifecycleEnv, databaseEnv, kafkaEnv, loadConfig, ports, nonNegativeInt, redisEnv } from '../../lib/config';
import { createDatabase } from '../../lib/database';
import { runService } from '../../lib/service';
import { startLocationSubgraph } from './server';

const config = loadConfig(
  commonEnv
    .extend(lifecycleEnv.shape)
    .extend(hostEnv.shape)
    .extend(databaseEnv.shape)
    .extend(redisEnv.shape)
    .extend(kafkaEnv.shape)
    .extend(callerEnv.shape)
    .extend({
      LOCATION_PORT: ports.LOCATION_PORT,
      LOCATION_MIN_INTERVAL_MS: nonNegativeInt(0),
      RECORDED_AT_MAX_FUTURE_MS: nonNegativeInt(5 * 60_000),
      RECORDED_AT_MAX_AGE_MS: nonNegativeInt(7 * 24 * 3_600_000),
    }),
);

runService('location', config, async (logger) => {
  const db = createDatabase({ url: config.APP_DATABASE_URL });
  const redis = new Redis(config.REDIS_URL, { lazyConnect: false });
  const kafka = new Kafka({ clientId: `${config.KAFKA_CLIENT_ID}-location`, brokers: config.KAFKA_BROKERS, logLevel: logLevel.WARN });
  // Idempotent with one request in flight: retries cannot duplicate or reorder a device's messages.
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  const subgraph = await startLocationSubgraph({
    port: config.LOCATION_PORT,
    host: config.HOST,
    callerSigningSecret: config.CALLER_SIGNING_SECRET,
    db,
    databaseUrl: config.APP_DATABASE_URL,
    redis,
    redisPrefix: config.REDIS_PREFIX,
    producer,
    topic: config.KAFKA_TOPIC,
    minIntervalMs: config.LOCATION_MIN_INTERVAL_MS,
    window: { maxFutureMs: config.RECORDED_AT_MAX_FUTURE_MS, maxAgeMs: config.RECORDED_AT_MAX_AGE_MS },
    logger,
  });
  return async () => {
    await subgraph.stop();
    await producer.disconnect();
    redis.disconnect();
    await db.close();
  };
});
