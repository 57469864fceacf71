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
import { answerHealth, createMetricsRegistry, localUrl, startStatusServer } from '../lib/health';
import type { Logger } from '../lib/logger';
import { answerRequestError, answerUnknownPath, graphqlJsonBody, requireJsonBody } from '../lib/requestErrors';
import { bearerToken, type CallerDirectory } from './identity';
import { SubgraphFetcher, type GatewayContext } from './subgraphFetcher';
import { createSubscriptionPlanner } from './subscriptions/federatedEvent';
import { LocationFeed } from './subscriptions/locationFeed';
import { LocationSubscriptions, type SubscriptionLimits } from './subscriptions/locationSubscriptions';
import { startWebSocketServer } from './webSocket';

export interface GatewayOptions {
  port: number;
  /** The public listen address; default loopback (gateway/main.ts passes GATEWAY_HOST, 0.0.0.0). */
  host?: string;
  /** `/metrics` (and `/health`) on a port of its own, never the public one. Default: port 0 on loopback. */
  metrics?: { port: number; host?: string };
  supergraphSdl: string;
  callerSigningSecret: string;
  identity: CallerDirectory;
  db: Database;
  redisUrl: string;
  redisPrefix: string;
  limits: SubscriptionLimits;
  /** See WebSocketOptions.callerRecheckMs. Default 60 s. */
  callerRecheckMs?: number;
  logger: Logger;
}

export interface RunningGateway {
  url: string;
  port: number;
  /** Base URL of the internal status port: `${metricsUrl}/metrics`. */
  metricsUrl: string;
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
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
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
    // Shutdown is the process's (lib/shutdown.ts); Apollo's handlers would re-raise the signal.
    stopOnTerminationSignals: false,
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
  const healthChecks = { database: () => options.db.ping(), redis: () => feed.ready };
  app.get('/health', (_req, res) => void answerHealth(healthChecks, res));
  app.use('/graphql', requireJsonBody);
  app.use(
    '/graphql',
    graphqlJsonBody,
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

  app.use(answerUnknownPath);
  app.use(answerRequestError(logger));

  // Metrics name tenants' activity: an internal port, loopback unless HOST says otherwise.
  const status = await startStatusServer({ port: options.metrics?.port ?? 0, host: options.metrics?.host, checks: healthChecks, registry });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port, host, () => resolve());
  }).catch(async (error: unknown) => {
    await status.close();
    throw error;
  });
  const { port } = httpServer.address() as AddressInfo;
  const url = localUrl(host, port, '/graphql');
  logger.info({ url, metrics: `${status.url}/metrics` }, 'gateway listening');

  return {
    url,
    port,
    metricsUrl: status.url,
    subscriptions,
    stop: async () => {
      subscriptions.close();
      await webSocket.close();
      await server.stop();
      await feed.close();
      await status.close();
    },
  };
}
