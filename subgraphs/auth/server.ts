import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'graphql';
import type { Database } from '../../lib/database';
import type { Logger } from '../../lib/logger';
import { startSubgraph, type RunningSubgraph } from '../../lib/subgraph';
import type { UserPool } from '../../lib/cognito/userPool';
import { resolvers, type AuthContext } from './resolvers';
import { normaliseEmail, saveUser, visibleUsers, type AnnounceStandingChange } from './users';
import { announceStandingChange, type Publisher } from '../../lib/channels';

export const typeDefs = parse(readFileSync(path.join(__dirname, 'schema.graphql'), 'utf8'));

export interface AuthSubgraphOptions {
  port: number;
  /** Listen address; default loopback (see lib/subgraph.ts). */
  host?: string;
  callerSigningSecret: string;
  db: Database;
  userPool: UserPool;
  /** Announces retirements and role changes to the gateways (see lib/channels.ts). */
  redis: Publisher;
  redisPrefix: string;
  admin: { email: string; password: string };
  logger: Logger;
}

/**
 * The first ADMIN, from ADMIN_EMAIL / ADMIN_PASSWORD: created in Cognito if missing (an existing
 * account, and so its password, is left alone) and recorded before serving. When the account was
 * re-created (a new pool, or deleted and made again), its new `sub` becomes the ADMIN and the old
 * row is retired.
 */
async function bootstrapAdmin(options: AuthSubgraphOptions, announce: AnnounceStandingChange): Promise<void> {
  const email = normaliseEmail(options.admin.email);
  const id = await options.userPool.ensureAdmin(email, options.admin.password);
  await saveUser(options.db, { id, email, role: 'ADMIN' }, announce);
  options.logger.info({ email }, 'admin ready');
}

export async function startAuthSubgraph(options: AuthSubgraphOptions): Promise<RunningSubgraph> {
  const announce: AnnounceStandingChange = async (userIds) => {
    for (const userId of userIds) await announceStandingChange(options.redis, options.redisPrefix, userId);
  };
  await bootstrapAdmin(options, announce);
  return startSubgraph<AuthContext>({
    name: 'auth',
    typeDefs,
    resolvers,
    port: options.port,
    host: options.host,
    callerSigningSecret: options.callerSigningSecret,
    logger: options.logger,
    health: { database: () => options.db.ping() },
    context: ({ caller }) => ({ caller, db: options.db, userPool: options.userPool, users: visibleUsers(caller, options.db), announce }),
  });
}
