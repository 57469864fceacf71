import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';
import { print, type DocumentNode, type ExecutionResult } from 'graphql';
import type { Caller } from '../lib/caller';
import type { Database } from '../lib/database';
import { BadUserInput, FleetError, Unauthenticated, formatFleetError } from '../lib/errors';
import { Gauge } from 'prom-client';
import { answerHealth, createMetricsRegistry, localUrl, startStatusServer } from '../lib/health';
import type { Logger } from '../lib/logger';
import { answerRequestError, answerUnknownPath, graphqlJsonBody, requireJsonBody } from '../lib/requestErrors';
import { DEFAULT_TILE_URL, dashboardRouter } from '../clients/dashboard/serve';
import { IdentityUnavailable, bearerToken, type CallerDirectory } from './identity';
import { isPublicOnly } from './publicOperations';
import { SubgraphFetcher, type GatewayContext } from './subgraphFetcher';
import { watchSupergraph, type SupergraphSource } from './supergraph';
import { buildSupergraphRuntime, type SupergraphRuntime } from './supergraphRuntime';
import { LocationFeed } from './subscriptions/locationFeed';
import { LocationHistory } from './subscriptions/locationHistory';
import {
  DEFAULT_LIVE_LIMITS,
  LocationSubscriptions,
  type LiveWorkLimits,
  type SubscriptionLimits,
} from './subscriptions/locationSubscriptions';
import { OperationGuard } from './operationGuard';
import { DEFAULT_OPERATION_LIMITS, type OperationLimits } from './operationLimits';
import { startWebSocketServer } from './webSocket';

export interface GatewayOptions {
  port: number;
  /** The public listen address; default loopback (gateway/main.ts passes GATEWAY_HOST, 0.0.0.0). */
  host?: string;
  /** `/metrics` (and `/health`) on a port of its own, never the public one. Default: port 0 on loopback. */
  metrics?: { port: number; host?: string };
  /** Where the supergraph comes from; it is read at start and again on every reload. */
  supergraph: SupergraphSource;
  /** Poll the source's files for changes every this many ms (0: reload only on `reloadSupergraph`). */
  supergraphPollMs?: number;
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
  /** Apollo Sandbox on GET /graphql: development only (main.ts). Default true. */
  sandbox?: boolean;
  /** The dashboard at /dashboard and its map tiles; false: not served. Default: OpenStreetMap's tiles. */
  dashboard?: { tileUrl: string } | false;
  /** Depth, aliases, directives, tokens, cost and socket message size; defaults: DEFAULT_OPERATION_LIMITS. */
  operationLimits?: Partial<OperationLimits>;
  /** Schema introspection (and "Did you mean" suggestions in errors). Default: as `sandbox`. */
  introspection?: boolean;
  logger: Logger;
}

export interface RunningGateway {
  url: string;
  port: number;
  /** Base URL of the internal status port: `${metricsUrl}/metrics`. */
  metricsUrl: string;
  subscriptions: LocationSubscriptions;
  /** Reads the supergraph source again; a supergraph that does not build is refused (false). */
  reloadSupergraph(): Promise<boolean>;
  /** Finishes in-flight deliveries, closes every socket with 1012, then stops. */
  stop(): Promise<void>;
}

/** How long a stopping gateway waits for in-flight deliveries before closing sockets anyway. */
const DRAIN_MS = 5_000;

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const { logger } = options;
  const subgraphTimeoutMs = options.subgraphTimeoutMs ?? 10_000;
  const runtimeOptions = { callerSigningSecret: options.callerSigningSecret, subgraphTimeoutMs, logger: logger.child({ component: 'subscription-plan' }) };
  let runtime: SupergraphRuntime = buildSupergraphRuntime(options.supergraph.load(), runtimeOptions);
  let updateGateway: ((sdl: string) => void) | undefined;
  const operationLimits = { ...DEFAULT_OPERATION_LIMITS, ...options.operationLimits };
  const guard = new OperationGuard({ apiSchema: runtime.apiSchema, limits: operationLimits, introspection: options.introspection ?? options.sandbox ?? true });

  const gateway = new ApolloGateway({
    // A function, so the gateway can be handed a new supergraph without a restart (see reload).
    supergraphSdl: async ({ update }) => {
      updateGateway = update;
      return { supergraphSdl: runtime.sdl };
    },
    buildService: ({ url }) => {
      if (!url) throw new Error('a subgraph of the supergraph has no routing URL');
      return new SubgraphFetcher(url, options.callerSigningSecret, subgraphTimeoutMs);
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
      options.sandbox ?? true ? ApolloServerPluginLandingPageLocalDefault({ embed: true }) : ApolloServerPluginLandingPageDisabled(),
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
    // Shutdown is the process's (lib/shutdown.ts); Apollo's handlers would re-raise the signal.
    stopOnTerminationSignals: false,
    // A request a browser would send cross-site without a preflight (a GET, or a POST that is not
    // JSON) runs only with a header no such request can carry. Authorization is one: a browser never
    // attaches it on its own, and a GET query with a token (CONTRACT.md) is what API clients send.
    csrfPrevention: { requestHeaders: ['authorization', 'apollo-require-preflight', 'x-apollo-operation-name'] },
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
  const history = new LocationHistory(runtime.locationUrl, options.callerSigningSecret, subgraphTimeoutMs);
  const subscriptions = new LocationSubscriptions(
    feed,
    runtime.planner,
    history,
    (query, variables, caller) => executeAs(query, undefined, variables, caller),
    options.limits,
    { ...DEFAULT_LIVE_LIMITS, ...options.live },
    logger.child({ component: 'subscriptions' }),
  );
  const webSocket = startWebSocketServer({
    httpServer,
    path: '/graphql',
    apiSchema: () => runtime.apiSchema,
    guard,
    maxMessageBytes: operationLimits.maxSocketMessageBytes,
    identity: options.identity,
    queueCapacity: options.limits.queueCapacity,
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
  if (options.dashboard !== false) app.use('/dashboard', dashboardRouter({ tileUrl: options.dashboard?.tileUrl ?? DEFAULT_TILE_URL, logger }));
  app.use('/graphql', requireJsonBody);
  app.use(
    '/graphql',
    graphqlJsonBody,
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

  /**
   * A new supergraph without a restart: queries plan against it at once (ApolloGateway's update),
   * open subscription groups are planned again (those whose operation no longer validates end
   * with an error and `complete`), sockets stay open. One that does not build is refused.
   */
  let reloading = Promise.resolve(true);
  const reloadSupergraph = (): Promise<boolean> => {
    reloading = reloading.then(async () => {
      let next: SupergraphRuntime;
      try {
        const sdl = options.supergraph.load();
        if (sdl === runtime.sdl) return true;
        next = buildSupergraphRuntime(sdl, runtimeOptions);
        updateGateway?.(sdl);
      } catch (error) {
        logger.error({ err: error }, 'refused a new supergraph; keeping the current one');
        return false;
      }
      runtime = next;
      guard.useSchema(next.apiSchema);
      history.moveTo(next.locationUrl);
      subscriptions.replan(next.planner, next.apiSchema);
      logger.info({ groups: subscriptions.groupCount }, 'supergraph reloaded');
      return true;
    });
    return reloading;
  };
  const stopWatching = options.supergraphPollMs ? watchSupergraph(options.supergraph, () => void reloadSupergraph(), options.supergraphPollMs) : () => undefined;

  return {
    url,
    port,
    metricsUrl: status.url,
    subscriptions,
    reloadSupergraph,
    stop: async () => {
      stopWatching();
      stopForgetting();
      stopForgettingAll();
      // Drain: no new events, what is being resolved is handed over, then clients go elsewhere.
      await subscriptions.drain(DRAIN_MS);
      webSocket.closeAll();
      subscriptions.close();
      await webSocket.close();
      await server.stop();
      await feed.close();
      await status.close();
    },
  };
}
