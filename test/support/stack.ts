import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { startBridge, type Bridge } from '../../bridge/bridge';
import { CallerDirectory, TokenVerifier } from '../../gateway/identity';
import { startGateway, type GatewayOptions, type RunningGateway } from '../../gateway/server';
import { SUPERGRAPH_CONFIG, composeSupergraph, type SupergraphSource } from '../../gateway/supergraph';
import { createDatabase, type Database } from '../../lib/database';
import { createLogger } from '../../lib/logger';
import type { RunningSubgraph } from '../../lib/subgraph';
import type { LiveWorkLimits } from '../../gateway/subscriptions/locationSubscriptions';
import { UserPool } from '../../lib/cognito/userPool';
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
  /** The gateway's identity cache lifetime (CallerDirectory), ms. */
  identityCacheTtlMs?: number;
  /** The gateway's live-work bounds (retry bound, pending per tenant, …). */
  live?: Partial<LiveWorkLimits>;
  subgraphTimeoutMs?: number;
  /** Another app client of the test pool (e.g. one whose ID tokens live seconds): login and verification use it. */
  cognitoClientId?: string;
  /** Serves the composed supergraph from a source of the test's own (e.g. a file it rewrites). */
  supergraph?: (composedSdl: string) => SupergraphSource;
  supergraphPollMs?: number;
  /** Rewrites a subgraph's URL in the supergraph, e.g. to put a fault-injecting proxy in front. */
  route?: (subgraph: SubgraphName, url: string) => string | Promise<string>;
  /** Gateway settings; unset: the gateway's defaults (introspection on, DEFAULT_OPERATION_LIMITS). */
  gateway?: Pick<GatewayOptions, 'operationLimits' | 'introspection'>;
}

export type SubgraphName = 'auth' | 'tenant' | 'location';

export interface TestStack {
  gatewayUrl: string;
  wsUrl: string;
  subgraphUrls: { auth: string; tenant: string; location: string };
  /** The supergraph the gateway started with. */
  supergraphSdl: string;
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
  /** Stops a subgraph (in-flight requests drain); `startSubgraph` brings it back on the same port. */
  stopSubgraph(name: SubgraphName): Promise<void>;
  startSubgraph(name: SubgraphName): Promise<void>;
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
    clientId: options.cognitoClientId ?? required('TEST_COGNITO_CLIENT_ID'),
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
  const common = { callerSigningSecret, db, logger };
  const starters: Record<SubgraphName, (port: number) => Promise<RunningSubgraph>> = {
    auth: (port) => startAuthSubgraph({ ...common, port, userPool, admin, redis, redisPrefix }),
    tenant: (port) => startTenantSubgraph({ ...common, port, userPool, redis, redisPrefix }),
    location: (port) =>
      startLocationSubgraph({
        ...common,
        port,
        databaseUrl: database.appUrl,
        redis,
        redisPrefix,
        producer,
        topic,
        minIntervalMs: options.minIntervalMs ?? 0,
        window: { maxFutureMs: 5 * 60_000, maxAgeMs: 7 * 24 * 3_600_000 },
      }),
  };
  const running = {} as Record<SubgraphName, RunningSubgraph | null>;
  const ports = {} as Record<SubgraphName, number>;
  const urls = {} as Record<SubgraphName, string>;
  for (const name of ['auth', 'tenant', 'location'] as const) {
    const subgraph = await starters[name](0);
    running[name] = subgraph;
    ports[name] = subgraph.port;
    urls[name] = subgraph.url;
    stops.unshift(async () => {
      await running[name]?.stop();
      running[name] = null;
    });
  }
  const route = options.route ?? ((_name, url) => url);
  const supergraphSdl = composeSupergraph({
    configPath: SUPERGRAPH_CONFIG,
    routingUrls: { auth: await route('auth', urls.auth), tenant: await route('tenant', urls.tenant), location: await route('location', urls.location) },
  });
  const verifier = new TokenVerifier({ region: cognito.region, userPoolId: cognito.userPoolId, clientId: cognito.clientId, issuer: cognito.issuer });
  const gateway = await started(
    startGateway({
      port: 0,
      supergraph: options.supergraph?.(supergraphSdl) ?? { load: () => supergraphSdl, files: () => [] },
      supergraphPollMs: options.supergraphPollMs,
      callerSigningSecret,
      identity: new CallerDirectory(verifier, db, { cacheTtlMs: options.identityCacheTtlMs ?? 5_000 }),
      db,
      redisUrl,
      redisPrefix,
      limits: { perConnection: 100, perTenant: 10_000, queueCapacity: 1_000, ...options.limits },
      callerRecheckMs: options.callerRecheckMs,
      live: options.live,
      subgraphTimeoutMs: options.subgraphTimeoutMs,
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
        databaseUrl: database.appUrl,
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
    subgraphUrls: urls,
    supergraphSdl,
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
    stopSubgraph: async (name) => {
      await running[name]?.stop();
      running[name] = null;
    },
    startSubgraph: async (name) => {
      running[name] ??= await starters[name](ports[name]);
    },
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
