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
import { BadUserInput, FleetError, Unauthenticated, formatFleetError } from '../lib/errors';
import { Gauge } from 'prom-client';
import { answerHealth, createMetricsRegistry } from '../lib/health';
import type { Logger } from '../lib/logger';
import { IdentityUnavailable, bearerToken, type CallerDirectory } from './identity';
import { isPublicOnly } from './publicOperations';
import { SubgraphFetcher, type GatewayContext } from './subgraphFetcher';
import { createEventPlanner } from './subscriptions/eventPlan';
import { LocationFeed } from './subscriptions/locationFeed';
import { LocationHistory } from './subscriptions/locationHistory';
import {
  DEFAULT_LIVE_LIMITS,
  LocationSubscriptions,
  type LiveWorkLimits,
  type SubscriptionLimits,
} from './subscriptions/locationSubscriptions';
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
  /** How live work is bounded; defaults in DEFAULT_LIVE_LIMITS. */
  live?: Partial<LiveWorkLimits>;
  /** Longest wait for one subgraph fetch, ms. Default 10 s. */
  subgraphTimeoutMs?: number;
  /** See WebSocketOptions.callerRecheckMs. Default 60 s. */
  callerRecheckMs?: number;
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
  const subgraphTimeoutMs = options.subgraphTimeoutMs ?? 10_000;
  const fetchers = new Map<string, SubgraphFetcher>();
  for (const subgraph of supergraph.subgraphs()) {
    fetchers.set(subgraph.name, new SubgraphFetcher(subgraph.url, options.callerSigningSecret, subgraphTimeoutMs));
  }
  const locationUrl = supergraph.subgraphs().get('location')?.url;
  if (!locationUrl) throw new Error('the supergraph has no location subgraph');
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
          let changesMembership = false;
          return {
            async didResolveOperation({ operation }) {
              if (operation?.operation === 'subscription') {
                throw new BadUserInput('query', 'Subscriptions are served over graphql-ws (subprotocol graphql-transport-ws) on /graphql');
              }
              changesMembership = operation?.operation === 'mutation' && operation.selectionSet.selections.some((s) => s.kind === 'Field' && s.name.value === 'addTenantMember');
            },
            async willSendResponse({ response }) {
              // This gateway saw the change itself: no need to wait for the Redis announcement.
              if (changesMembership && response.body.kind === 'single' && !response.body.singleResult.errors?.length) options.identity.forgetAll();
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
  // Cached roles and tenants follow membership announcements; a reconnect may have missed some.
  const stopForgetting = feed.onMembershipChanged((userId) => options.identity.forget(userId));
  const stopForgettingAll = feed.onResubscribed(() => options.identity.forgetAll());
  const planner = createEventPlanner({ supergraph, serviceMap, logger: logger.child({ component: 'subscription-plan' }) });
  const subscriptions = new LocationSubscriptions(
    feed,
    planner,
    new LocationHistory(locationUrl, options.callerSigningSecret, subgraphTimeoutMs),
    (query, variables, caller) => executeAs(query, undefined, variables, caller),
    options.limits,
    { ...DEFAULT_LIVE_LIMITS, ...options.live },
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
        try {
          const token = bearerToken(header);
          if (!token) throw new Unauthenticated('The Authorization header must be "Bearer <idToken>"');
          return { caller: (await options.identity.callerFor(token)).caller };
        } catch (error) {
          if (error instanceof Unauthenticated) {
            // A stale token must not stop a client from signing in again or refreshing it.
            const body = req.body as { query?: unknown; operationName?: unknown } | undefined;
            if (isPublicOnly(body?.query, body?.operationName)) return { caller: null };
            throw new Unauthenticated(error.message, { rejectsRequest: true });
          }
          logger.error({ err: error }, 'could not establish the caller');
          // Not the token's fault: 401 would make clients sign the user out; this says "retry".
          const retryAfterMs = error instanceof IdentityUnavailable ? error.retryAfterMs : 1000;
          throw new FleetError('INTERNAL_SERVER_ERROR', 'Temporarily unavailable; retry', {
            retryAfterMs,
            http: { status: 503, headers: new Map([['retry-after', String(Math.ceil(retryAfterMs / 1000))]]) },
          });
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
      stopForgetting();
      stopForgettingAll();
      subscriptions.close();
      await webSocket.close();
      await server.stop();
      await feed.close();
    },
  };
}
