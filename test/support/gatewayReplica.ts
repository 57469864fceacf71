import { CallerDirectory, TokenVerifier } from '../../gateway/identity';
import { startGateway, type GatewayOptions, type RunningGateway } from '../../gateway/server';
import { createLogger } from '../../lib/logger';
import type { TestStack } from './stack';

/**
 * Another gateway in front of a stack's subgraphs, Redis channels and database: a second replica
 * (port 0), or the stack's gateway coming back on its own port after a restart.
 */
export function startGatewayReplica(stack: TestStack, port = 0, overrides: Partial<GatewayOptions> = {}): Promise<RunningGateway> {
  const { cognito } = stack;
  const verifier = new TokenVerifier({ region: cognito.region, userPoolId: cognito.userPoolId, clientId: cognito.clientId, issuer: cognito.issuer });
  return startGateway({
    port,
    supergraph: { load: () => stack.supergraphSdl, files: () => [] },
    callerSigningSecret: stack.callerSigningSecret,
    identity: new CallerDirectory(verifier, stack.db, { cacheTtlMs: 5_000 }),
    db: stack.db,
    redisUrl: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    redisPrefix: stack.redisPrefix,
    limits: { perConnection: 100, perTenant: 10_000, queueCapacity: 1_000 },
    logger: createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent'),
    ...overrides,
  });
}
