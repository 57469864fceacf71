import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'graphql';
import type { Redis } from 'ioredis';
import { announceStandingChange } from '../../lib/channels';
import type { Database } from '../../lib/database';
import type { Logger } from '../../lib/logger';
import { startSubgraph, type RunningSubgraph } from '../../lib/subgraph';
import type { UserPool } from '../../lib/cognito/userPool';
import { resolvers, type TenantContext } from './resolvers';
import { tenantLoadersFor } from './tenants';

export const typeDefs = parse(readFileSync(path.join(__dirname, 'schema.graphql'), 'utf8'));

export interface TenantSubgraphOptions {
  port: number;
  /** Listen address; default loopback (see lib/subgraph.ts). */
  host?: string;
  callerSigningSecret: string;
  db: Database;
  userPool: UserPool;
  /** Publishes membership changes to the gateways (see lib/channels.ts). */
  redis: Redis;
  redisPrefix: string;
  logger: Logger;
}

export function startTenantSubgraph(options: TenantSubgraphOptions): Promise<RunningSubgraph> {
  return startSubgraph<TenantContext>({
    name: 'tenant',
    typeDefs,
    resolvers,
    port: options.port,
    host: options.host,
    callerSigningSecret: options.callerSigningSecret,
    logger: options.logger,
    health: { database: () => options.db.ping(), redis: () => options.redis.status === 'ready' },
    context: ({ caller, viaGateway }) => ({
      caller,
      viaGateway,
      db: options.db,
      userPool: options.userPool,
      announceMembershipChange: (userId) => announceStandingChange(options.redis, options.redisPrefix, userId),
      loaders: tenantLoadersFor(caller, options.db),
    }),
  });
}
