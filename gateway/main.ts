import 'dotenv/config';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { callerEnv, cognitoEnv, commonEnv, databaseEnv, loadConfig, ports, nonNegativeInt, redisEnv } from '../lib/config';
import { createDatabase } from '../lib/database';
import { runService } from '../lib/service';
import { CallerDirectory, TokenVerifier } from './identity';
import { DEFAULT_OPERATION_LIMITS as LIMITS } from './operationLimits';
import { startGateway } from './server';
import { SUPERGRAPH_CONFIG, composeSupergraph } from './supergraph';

const positiveInt = (fallback: number) => z.coerce.number().int().min(1).default(fallback);

const config = loadConfig(
  commonEnv
    .extend(databaseEnv.shape)
    .extend(redisEnv.shape)
    .extend(cognitoEnv.shape)
    .extend(callerEnv.shape)
    .extend({
      GATEWAY_PORT: ports.GATEWAY_PORT,
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
      /** Operation limits (README, "Operation limits"), the same on HTTP and graphql-ws. */
      QUERY_MAX_DEPTH: positiveInt(LIMITS.maxDepth),
      QUERY_MAX_ALIASES: positiveInt(LIMITS.maxAliases),
      QUERY_MAX_DIRECTIVES: positiveInt(LIMITS.maxDirectives),
      QUERY_MAX_TOKENS: positiveInt(LIMITS.maxTokens),
      QUERY_MAX_COST: positiveInt(LIMITS.maxCost),
      QUERY_ASSUMED_LIST_SIZE: positiveInt(LIMITS.assumedListSize),
      SOCKET_MAX_MESSAGE_BYTES: positiveInt(LIMITS.maxSocketMessageBytes),
      /** Off where the schema is not public; also hides "Did you mean" hints. Replaces Apollo's NODE_ENV-based default. */
      GATEWAY_INTROSPECTION: z.enum(['true', 'false']).default('true').transform((value) => value === 'true'),
    }),
);

runService('gateway', config.LOG_LEVEL, async (logger) => {
  const supergraphSdl = config.SUPERGRAPH_PATH
    ? readFileSync(config.SUPERGRAPH_PATH, 'utf8')
    : composeSupergraph({
        configPath: SUPERGRAPH_CONFIG,
        routingUrls: { auth: config.AUTH_URL, tenant: config.TENANT_URL, location: config.LOCATION_URL },
      });
  const db = createDatabase({ url: config.APP_DATABASE_URL });
  const verifier = new TokenVerifier({
    region: config.AWS_REGION,
    userPoolId: config.COGNITO_USER_POOL_ID,
    clientId: config.COGNITO_CLIENT_ID,
    issuer: config.COGNITO_ISSUER ?? (config.COGNITO_ENDPOINT ? `${config.COGNITO_ENDPOINT.replace(/\/$/, '')}/${config.COGNITO_USER_POOL_ID}` : undefined),
  });
  await verifier.warm().catch((error: unknown) => logger.warn({ err: error }, 'JWKS not loaded yet; will load on the first token'));
  const gateway = await startGateway({
    port: config.GATEWAY_PORT,
    supergraphSdl,
    callerSigningSecret: config.CALLER_SIGNING_SECRET,
    identity: new CallerDirectory(verifier, db),
    db,
    redisUrl: config.REDIS_URL,
    redisPrefix: config.REDIS_PREFIX,
    callerRecheckMs: config.SOCKET_CALLER_RECHECK_MS,
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
    introspection: config.GATEWAY_INTROSPECTION,
    logger,
  });
  return async () => {
    await gateway.stop();
    await db.close();
  };
});
