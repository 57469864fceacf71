import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloGateway, type ServiceMap } from '@apollo/gateway';
import { Supergraph } from '@apollo/federation-internals';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';
import { print, type DocumentNode, type ExecutionResult } from 'graphql';
import type { Caller } from '../lib/caller';
import type { Database } from '../lib/database';
import { BadUserInput, Unauthenticated, formatFleetError } from '../lib/errors';
import { Gauge } from 'prom-client';
import { answerHealth, createMetricsRegistry } from '../lib/health';
import type { Logger } from '../lib/logger';
import { bearerToken, type CallerDirectory } from './identity';
import { SubgraphFetcher, type GatewayContext } from './subgraphFetcher';
import { createSubscriptionPlanner } from './subscriptions/federatedEvent';
import { LocationFeed } from './subscriptions/locationFeed';
import { LocationSubscriptions, type SubscriptionLimits } from './subscriptions/locationSubscriptions';
import { OperationGuard } from './operationGuard';
import { DEFAULT_OPERATION_LIMITS, type OperationLimits } from './operationLimits';
import { startWebSocketServer } from './webSocket';

export interface GatewayOptions {
  port: number;
  supergraphSdl: string;
  callerSigningSecret: string;
  identity: CallerDirectory;
  db: Database;
  redisUrl: string;
  redisPrefix: string;
  limits: SubscriptionLimits;
  /** See WebSocketOptions.callerRecheckMs. Default 60 s. */
  callerRecheckMs?: number;
  /** Depth, aliases, directives, tokens, cost and socket message size; defaults: DEFAULT_OPERATION_LIMITS. */
  operationLimits?: Partial<OperationLimits>;
  /** Schema introspection (and "Did you mean" suggestions in errors). Default on. */
  introspection?: boolean;
  logger: Logger;
}

export interface RunningGateway {
  url: string;
  port: number;
  subscriptions: LocationSubscriptions;
  stop(): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const { logger } = options;
  const supergraph = Supergraph.build(options.supergraphSdl);
  const apiSchema = supergraph.apiSchema().toGraphQLJSSchema();
  const fetchers = new Map<string, SubgraphFetcher>();
  for (const subgraph of supergraph.subgraphs()) {
    fetchers.set(subgraph.name, new SubgraphFetcher(subgraph.url, options.callerSigningSecret));
  }
  const serviceMap: ServiceMap = Object.fromEntries(fetchers);
  const operationLimits = { ...DEFAULT_OPERATION_LIMITS, ...options.operationLimits };
  const guard = new OperationGuard({ apiSchema, limits: operationLimits, introspection: options.introspection ?? true });

  const gateway = new ApolloGateway({
    supergraphSdl: options.supergraphSdl,
    buildService: ({ name }) => {
      const fetcher = fetchers.get(name);
      if (!fetcher) throw new Error(`the supergraph names an unknown subgraph ${name}`);
      return fetcher;
    },
    logger,
  });

  const app = express();
  const httpServer = http.createServer(app);
  const server = new ApolloServer<GatewayContext>({
    gateway,
    ...guard.apolloOptions,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      guard.plugin,
      {
        // @apollo/gateway cannot execute a subscription; say where subscriptions are served instead.
        async requestDidStart() {
          return {
            async didResolveOperation({ operation }) {
              if (operation?.operation === 'subscription') {
                throw new BadUserInput('query', 'Subscriptions are served over graphql-ws (subprotocol graphql-transport-ws) on /graphql');
              }
            },
          };
        },
      },
    ],
    includeStacktraceInErrorResponses: false,
    // CSRF protection guards cookie sessions; callers here authenticate with an Authorization header,
    // which a browser never attaches on its own, and plain GET queries (CONTRACT.md) must work.
    csrfPrevention: false,
    formatError: (formatted, error) =>
      formatFleetError(formatted, () => logger.error({ err: error, path: formatted.path }, 'request failed')),
  });
  await server.start();

  /** The same executor as HTTP, for subscriptions' checks and catch-up and for operations over WebSocket. */
  const executeAs = async (document: DocumentNode | string, operationName: string | undefined, variables: Record<string, unknown>, caller: Caller): Promise<ExecutionResult> => {
    const response = await server.executeOperation(
      { query: typeof document === 'string' ? document : print(document), operationName, variables },
      { contextValue: { caller } },
    );
    if (response.body.kind !== 'single') throw new Error('incremental delivery is not supported');
    return response.body.singleResult as ExecutionResult;
  };

  const feed = new LocationFeed(options.redisUrl, options.redisPrefix, logger.child({ component: 'location-feed' }));
  await feed.followingMemberships();
  const planner = createSubscriptionPlanner({ supergraph, apiSchema, serviceMap, logger: logger.child({ component: 'subscription-plan' }) });
  const subscriptions = new LocationSubscriptions(
    feed,
    planner,
    (query, variables, caller) => executeAs(query, undefined, variables, caller),
    options.limits,
    logger.child({ component: 'subscriptions' }),
  );
  const webSocket = startWebSocketServer({
    httpServer,
    path: '/graphql',
    apiSchema,
    guard,
    maxMessageBytes: operationLimits.maxSocketMessageBytes,
    identity: options.identity,
    subscriptions,
    onMembershipChanged: (listener) => feed.onMembershipChanged(listener),
    callerRecheckMs: options.callerRecheckMs ?? 60_000,
    executeOperation: executeAs,
    logger: logger.child({ component: 'graphql-ws' }),
  });

  const registry = createMetricsRegistry('gateway');
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
  gauge('fleet_gateway_subscriptions', 'Open locationUpdated subscriptions', () => subscriptions.size);
  gauge('fleet_gateway_subscription_groups', 'Groups of subscribers sharing one plan execution per event', () => subscriptions.groupCount);
  gauge('fleet_gateway_events_resolved_total', 'Location events resolved through the query plan', () => subscriptions.stats.eventsResolved);
  gauge('fleet_gateway_slow_subscribers_dropped_total', 'Subscribers dropped because they stopped reading', () => subscriptions.stats.slowSubscribersDropped);
  gauge('fleet_gateway_websockets', 'Open graphql-ws connections', () => webSocket.connections);
  app.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
  app.get('/health', (_req, res) =>
    void answerHealth({ database: () => options.db.ping(), redis: () => feed.ready }, res),
  );
  app.use(
    '/graphql',
    express.json({ limit: '2mb' }),
    expressMiddleware(server, {
      context: async ({ req }) => {
        const header = req.headers.authorization;
        if (header === undefined) return { caller: null };
        const token = bearerToken(header);
        if (!token) throw new Unauthenticated('The Authorization header must be "Bearer <idToken>"', { rejectsRequest: true });
        try {
          return { caller: (await options.identity.callerFor(token)).caller };
        } catch (error) {
          if (error instanceof Unauthenticated) throw new Unauthenticated(error.message, { rejectsRequest: true });
          throw error;
        }
      },
    }),
  );

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port, '0.0.0.0', () => resolve());
  });
  const { port } = httpServer.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}/graphql`;
  logger.info({ url }, 'gateway listening');

  return {
    url,
    port,
    subscriptions,
    stop: async () => {
      subscriptions.close();
      await webSocket.close();
      await server.stop();
      await feed.close();
    },
  };
}
