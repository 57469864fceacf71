import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { startBridge, type Bridge } from '../../bridge/bridge';
import { CallerDirectory, TokenVerifier } from '../../gateway/identity';
import { startGateway, type GatewayOptions, type RunningGateway } from '../../gateway/server';
import { SUPERGRAPH_CONFIG, composeSupergraph } from '../../gateway/supergraph';
import { createDatabase, type Database } from '../../lib/database';
import { createLogger } from '../../lib/logger';
import type { RunningSubgraph } from '../../lib/subgraph';
import { UserPool } from '../../lib/userPool';
import { startAuthSubgraph } from '../../subgraphs/auth/server';
import { startLocationSubgraph } from '../../subgraphs/location/server';
import { startTenantSubgraph } from '../../subgraphs/tenant/server';
import { createTestDatabase, type TestDatabase } from './testDatabase';

/**
 * The whole platform in this test process, on real PostgreSQL, Redis, the Kafka-protocol broker
 * and cognito-local (started by globalSetup), each on port 0. Modelled on @apollo/gateway's test
 * helper: one call starts the subgraphs and a gateway and returns their URLs and `stop()`.
 * Every stack has its own database, Redis prefix, Kafka topic and consumer group.
 */
export interface TestStackOptions {
  kafkaBrokers?: string[];
  minIntervalMs?: number;
  limits?: Partial<{ perConnection: number; perTenant: number; queueCapacity: number }>;
  /** Start the bridge (default true); subscription tests may start and stop their own. */
  bridge?: boolean;
  redisUrl?: string;
  callerRecheckMs?: number;
  /** Gateway settings; unset: the gateway's defaults (introspection on, DEFAULT_OPERATION_LIMITS). */
  gateway?: Pick<GatewayOptions, 'operationLimits' | 'introspection'>;
}

export interface TestStack {
  gatewayUrl: string;
  wsUrl: string;
  subgraphUrls: { auth: string; tenant: string; location: string };
  admin: { email: string; password: string };
  callerSigningSecret: string;
  database: TestDatabase;
  db: Database;
  cognito: { endpoint: string; userPoolId: string; clientId: string; issuer: string; region: string };
  userPool: UserPool;
  redisPrefix: string;
  topic: string;
  kafkaBrokers: string[];
  gateway: RunningGateway;
  bridge: Bridge | null;
  startBridge(groupId?: string): Promise<Bridge>;
  stop(): Promise<void>;
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with jest (globalSetup starts the stand-ins)`);
  return value;
}

export async function startTestStack(options: TestStackOptions = {}): Promise<TestStack> {
  const logger = createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent');
  const run = randomUUID().slice(0, 8);
  const cognito = {
    endpoint: required('TEST_COGNITO_ENDPOINT'),
    userPoolId: required('TEST_COGNITO_USER_POOL_ID'),
    clientId: required('TEST_COGNITO_CLIENT_ID'),
    issuer: required('TEST_COGNITO_ISSUER'),
    region: 'us-east-1',
  };
  const kafkaBrokers = options.kafkaBrokers ?? [required('TEST_KAFKA_BROKERS')];
  const redisUrl = options.redisUrl ?? process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redisPrefix = `test:${run}:`;
  const topic = `locations-${run}`;
  const callerSigningSecret = `test-secret-${randomUUID()}-${randomUUID()}`;
  const admin = { email: `admin-${run}@fleet.test`, password: 'admin-password-1' };

  const database = await createTestDatabase();
  const db = createDatabase({ url: database.appUrl });
  const userPool = new UserPool({ region: cognito.region, userPoolId: cognito.userPoolId, clientId: cognito.clientId, endpoint: cognito.endpoint });
  const redis = new Redis(redisUrl);
  const kafka = new Kafka({ clientId: `test-${run}`, brokers: kafkaBrokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });

  const stops: Array<() => Promise<void>> = [];
  const started = async <T extends { stop(): Promise<void> }>(service: Promise<T>): Promise<T> => {
    const value = await service;
    stops.unshift(() => value.stop());
    return value;
  };
  const common = { port: 0, callerSigningSecret, db, logger };
  const auth: RunningSubgraph = await started(startAuthSubgraph({ ...common, userPool, admin }));
  const tenant: RunningSubgraph = await started(startTenantSubgraph({ ...common, userPool, redis, redisPrefix }));
  const location: RunningSubgraph = await started(
    startLocationSubgraph({
      ...common,
      databaseUrl: database.appUrl,
      redis,
      redisPrefix,
      producer,
      topic,
      minIntervalMs: options.minIntervalMs ?? 0,
      window: { maxFutureMs: 5 * 60_000, maxAgeMs: 7 * 24 * 3_600_000 },
    }),
  );
  const supergraphSdl = composeSupergraph({
    configPath: SUPERGRAPH_CONFIG,
    routingUrls: { auth: auth.url, tenant: tenant.url, location: location.url },
  });
  const verifier = new TokenVerifier({ region: cognito.region, userPoolId: cognito.userPoolId, clientId: cognito.clientId, issuer: cognito.issuer });
  const gateway = await started(
    startGateway({
      port: 0,
      supergraphSdl,
      callerSigningSecret,
      identity: new CallerDirectory(verifier, db),
      db,
      redisUrl,
      redisPrefix,
      limits: { perConnection: 100, perTenant: 10_000, queueCapacity: 1_000, ...options.limits },
      callerRecheckMs: options.callerRecheckMs,
      ...options.gateway,
      logger,
    }),
  );

  const bridgeFor = (groupId = `bridge-${run}`) =>
    startBridge(
      {
        brokers: kafkaBrokers,
        topic,
        groupId,
        clientId: `bridge-${run}`,
        redisUrl,
        redisPrefix,
        maxWaitMs: 50,
        sessionTimeoutMs: 6000,
        heartbeatIntervalMs: 500,
        statusPort: 0,
        statusHost: '127.0.0.1',
      },
      logger,
    );
  let bridge: Bridge | null = null;
  if (options.bridge !== false) {
    bridge = await started(bridgeFor());
    await bridge.ready;
  }

  return {
    gatewayUrl: gateway.url,
    wsUrl: gateway.url.replace(/^http/, 'ws'),
    subgraphUrls: { auth: auth.url, tenant: tenant.url, location: location.url },
    admin,
    callerSigningSecret,
    database,
    db,
    cognito,
    userPool,
    redisPrefix,
    topic,
    kafkaBrokers,
    gateway,
    bridge,
    startBridge: async (groupId) => {
      const started = await bridgeFor(groupId);
      stops.unshift(() => started.stop());
      return started;
    },
    stop: async () => {
      for (const stop of stops) await stop().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
      redis.disconnect();
      userPool.destroy();
      await db.close();
      await database.drop();
    },
  };
}
