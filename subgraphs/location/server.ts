import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'graphql';
import type { Redis } from 'ioredis';
import type { Producer } from 'kafkajs';
import type { Database } from '../../lib/database';
import type { Logger } from '../../lib/logger';
import { startSubgraph, type RunningSubgraph } from '../../lib/subgraph';
import { DeviceRateLimit } from './deviceRateLimit';
import { OutboxRelay } from './outboxRelay';
import { loadersFor, resolvers, type LocationContext } from './resolvers';
import type { RecordingWindow } from './validation';

export const typeDefs = parse(readFileSync(path.join(__dirname, 'schema.graphql'), 'utf8'));

export interface LocationSubgraphOptions {
  port: number;
  /** Listen address; default loopback (see lib/subgraph.ts). */
  host?: string;
  callerSigningSecret: string;
  db: Database;
  /** Direct connection URL for the outbox relay's lock session (advisory lock, LISTEN, outbox reads and deletes). */
  databaseUrl: string;
  redis: Redis;
  redisPrefix: string;
  producer: Producer;
  topic: string;
  minIntervalMs: number;
  window: RecordingWindow;
  logger: Logger;
}

export async function startLocationSubgraph(options: LocationSubgraphOptions): Promise<RunningSubgraph> {
  const rateLimit = new DeviceRateLimit(options.redis, options.redisPrefix, options.minIntervalMs);
  const relay = new OutboxRelay({
    databaseUrl: options.databaseUrl,
    producer: options.producer,
    topic: options.topic,
    logger: options.logger.child({ component: 'outbox-relay' }),
  });
  relay.start();
  const subgraph = await startSubgraph<LocationContext>({
    name: 'location',
    typeDefs,
    resolvers,
    port: options.port,
    host: options.host,
    callerSigningSecret: options.callerSigningSecret,
    logger: options.logger,
    // Kafka is not needed to accept locations: they wait in the outbox while it is away.
    health: {
      database: () => options.db.ping(),
      ...(rateLimit.enabled ? { redis: () => options.redis.status === 'ready' } : {}),
    },
    context: ({ caller, extensions }) => ({
      caller,
      db: options.db,
      rateLimit,
      relay,
      window: options.window,
      locationEvents: extensions.locationEvents,
      loaders: loadersFor(caller, options.db),
    }),
  });
  return {
    ...subgraph,
    stop: async () => {
      await subgraph.stop();
      await relay.stop();
    },
  };
}
