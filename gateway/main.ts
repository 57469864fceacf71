import 'dotenv/config';
import { z } from 'zod';
import { callerEnv, cognitoEnv, commonEnv, databaseEnv, hostEnv, isDevelopment, lifecycleEnv, loadConfig, ports, nonNegativeInt, redisEnv } from '../lib/config';
import { DEFAULT_TILE_URL } from '../clients/dashboard/serve';
import { createDatabase } from '../lib/database';
import { runService } from '../lib/service';
import { CallerDirectory, TokenVerifier } from './identity';
import { DEFAULT_OPERATION_LIMITS as LIMITS } from './operationLimits';
import { startGateway } from './server';
import { SUPERGRAPH_CONFIG, composedSupergraph, fileSupergraph } from './supergraph';

const positiveInt = (fallback: number) => z.coerce.number().int().min(1).default(fallback);

const config = loadConfig(
  commonEnv
    .extend(lifecycleEnv.shape)
    .extend(hostEnv.shape)
    .extend(databaseEnv.shape)
    .extend(redisEnv.shape)
    .extend(cognitoEnv.shape)
    .extend(callerEnv.shape)
    .extend({
      GATEWAY_PORT: ports.GATEWAY_PORT,
      /** The public endpoint: all interfaces. /metrics is served on GATEWAY_METRICS_PORT at HOST instead. */
      GATEWAY_HOST: z.string().min(1).default('0.0.0.0'),
      GATEWAY_METRICS_PORT: ports.GATEWAY_METRICS_PORT,
      /** A supergraph SDL composed ahead of time (`npm run compose`); unset: composed at start from supergraph.yaml. */
      SUPERGRAPH_PATH: z.string().optional(),
      AUTH_URL: z.string().url().optional(),
      TENANT_URL: z.string().url().optional(),
      LOCATION_URL: z.string().url().optional(),
      /** Only for an emulator whose issuer is not `<COGNITO_ENDPOINT>/<pool id>`. */
      COGNITO_ISSUER: z.string().url().optional(),
      SUBSCRIPTIONS_PER_CONNECTION: nonNegativeInt(100),
      SUBSCRIPTIONS_PER_TENANT: nonNegativeInt(10_000),
      SUBSCRIBER_QUEUE_CAPACITY: nonNegativeInt(1_000),
      SOCKET_CALLER_RECHECK_MS: nonNegativeInt(60_000),
      /** How often the supergraph's files are checked for a change (0: only on SIGHUP). */
      SUPERGRAPH_POLL_MS: nonNegativeInt(2_000),
      /** How long a user's role and tenant are reused before the database is read again. */
      CALLER_CACHE_TTL_MS: nonNegativeInt(5_000),
      /** Longest wait for one subgraph fetch. */
      SUBGRAPH_TIMEOUT_MS: nonNegativeInt(10_000),
      /** How long a failing event resolution is retried before the subscriber gets an error naming the location. */
      EVENT_RETRY_MS: nonNegativeInt(30_000),
      /** Events waiting for resolution per tenant before its largest backlog is shed (RATE_LIMITED). */
      PENDING_EVENTS_PER_TENANT: nonNegativeInt(10_000),
      /** How far back a resume (or a gap fill) reaches: locations per device. */
      RESUME_MAX_LOCATIONS: z.coerce.number().int().min(1).max(10_000).default(1_000),
      /** The dashboard map's tile URL template (Leaflet's `{s}`, `{z}`, `{x}`, `{y}`). */
      DASHBOARD_TILE_URL: z.string().regex(/^https?:\/\/\S+$/, 'DASHBOARD_TILE_URL must be an http(s) URL template').default(DEFAULT_TILE_URL),
      /** Operation limits (README, "Operation limits"), the same on HTTP and graphql-ws. */
      QUERY_MAX_DEPTH: positiveInt(LIMITS.maxDepth),
      QUERY_MAX_ALIASES: positiveInt(LIMITS.maxAliases),
      QUERY_MAX_DIRECTIVES: positiveInt(LIMITS.maxDirectives),
      QUERY_MAX_TOKENS: positiveInt(LIMITS.maxTokens),
      QUERY_MAX_COST: positiveInt(LIMITS.maxCost),
      QUERY_ASSUMED_LIST_SIZE: positiveInt(LIMITS.assumedListSize),
      SOCKET_MAX_MESSAGE_BYTES: positiveInt(LIMITS.maxSocketMessageBytes),
      /** Schema introspection; off also hides "Did you mean" hints. Unset: on in development, off in production. */
      GATEWAY_INTROSPECTION: z.enum(['true', 'false']).transform((value) => value === 'true').optional(),
    }),
);

runService('gateway', config, async (logger) => {
  const supergraph = config.SUPERGRAPH_PATH
    ? fileSupergraph(config.SUPERGRAPH_PATH)
    : composedSupergraph({
        configPath: SUPERGRAPH_CONFIG,
        routingUrls: { auth: config.AUTH_URL, tenant: config.TENANT_URL, location: config.LOCATION_URL },
      });
  // After a restart every dashboard reconnects at once and the event loop is busy with their
  // handshakes: a caller lookup may wait that long for a connection without anything being wrong.
  const db = createDatabase({ url: config.APP_DATABASE_URL, transactionOptions: { maxWait: 10_000 } });
  const verifier = new TokenVerifier({
    region: config.AWS_REGION,
    userPoolId: config.COGNITO_USER_POOL_ID,
    clientId: config.COGNITO_CLIENT_ID,
    issuer: config.COGNITO_ISSUER ?? (config.COGNITO_ENDPOINT ? `${config.COGNITO_ENDPOINT.replace(/\/$/, '')}/${config.COGNITO_USER_POOL_ID}` : undefined),
  });
  await verifier.warm().catch((error: unknown) => logger.warn({ err: error }, 'JWKS not loaded yet; will load on the first token'));
  const gateway = await startGateway({
    port: config.GATEWAY_PORT,
    host: config.GATEWAY_HOST,
    metrics: { port: config.GATEWAY_METRICS_PORT, host: config.HOST },
    supergraph,
    supergraphPollMs: config.SUPERGRAPH_POLL_MS,
    callerSigningSecret: config.CALLER_SIGNING_SECRET,
    identity: new CallerDirectory(verifier, db, { cacheTtlMs: config.CALLER_CACHE_TTL_MS }),
    subgraphTimeoutMs: config.SUBGRAPH_TIMEOUT_MS,
    live: {
      retryBoundMs: config.EVENT_RETRY_MS,
      pendingPerTenant: config.PENDING_EVENTS_PER_TENANT,
      historyLimit: config.RESUME_MAX_LOCATIONS,
    },
    db,
    redisUrl: config.REDIS_URL,
    redisPrefix: config.REDIS_PREFIX,
    callerRecheckMs: config.SOCKET_CALLER_RECHECK_MS,
    // Introspection and Sandbox only where the schema is no secret and nobody relies on it being off.
    sandbox: isDevelopment(config.NODE_ENV),
    dashboard: { tileUrl: config.DASHBOARD_TILE_URL },
    limits: {
      perConnection: config.SUBSCRIPTIONS_PER_CONNECTION,
      perTenant: config.SUBSCRIPTIONS_PER_TENANT,
      queueCapacity: config.SUBSCRIBER_QUEUE_CAPACITY,
    },
    operationLimits: {
      maxDepth: config.QUERY_MAX_DEPTH,
      maxAliases: config.QUERY_MAX_ALIASES,
      maxDirectives: config.QUERY_MAX_DIRECTIVES,
      maxTokens: config.QUERY_MAX_TOKENS,
      maxCost: config.QUERY_MAX_COST,
      assumedListSize: config.QUERY_ASSUMED_LIST_SIZE,
      maxSocketMessageBytes: config.SOCKET_MAX_MESSAGE_BYTES,
    },
    introspection: config.GATEWAY_INTROSPECTION ?? isDevelopment(config.NODE_ENV),
    logger,
  });
  // SIGHUP: read the supergraph again now (operators, deploy scripts).
  process.on('SIGHUP', () => void gateway.reloadSupergraph());
  return async () => {
    await gateway.stop();
    await db.close();
  };
}, { stopSignals: ['SIGINT', 'SIGTERM'] }); // SIGHUP reloads the supergraph instead
