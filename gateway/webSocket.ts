import type { Server as HttpServer } from 'node:http';
import { GraphQLError, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { getArgumentValues } from 'graphql/execution/values';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Caller } from '../lib/caller';
import { BadUserInput, FleetError, Unauthenticated } from '../lib/errors';
import type { Logger } from '../lib/logger';
import { bearerToken, type CallerDirectory } from './identity';
import type { OperationGuard } from './operationGuard';
import type { LocationSubscriptions, LocationUpdatedArgs, SubscriberConnection } from './subscriptions/locationSubscriptions';
import type { SubscriberQueue } from './subscriptions/subscriberQueue';

/**
 * graphql-ws on the gateway's `/graphql` path (subprotocol `graphql-transport-ws`).
 *
 * The token travels in `connection_init` (`{ authorization: "Bearer <idToken>" }`); a missing or
 * bad one closes the socket with 4401, and the socket is closed with 4401 when the token expires,
 * so clients reconnect with a fresh one. Subscriptions are validated against the supergraph's API
 * schema and served by LocationSubscriptions; queries and mutations sent over the socket run
 * through the same executor as HTTP.
 */
export const CLOSE_UNAUTHORIZED = 4401;
/** The caller's tenant changed while connected: what the socket was authorized for no longer holds. */
export const CLOSE_MEMBERSHIP_CHANGED = 4403;
/** RFC 6455 "Try Again Later": the client stopped reading and its backlog hit the bound. */
export const CLOSE_TOO_SLOW = 1013;
/** How long a dropped slow client has to read up to the close frame before its socket is cut. */
const SLOW_CLOSE_GRACE_MS = 5_000;

interface ConnectionState extends SubscriberConnection {
  token: string;
  expiry?: NodeJS.Timeout;
  recheck?: NodeJS.Timeout;
}

type Extra = { socket: WebSocket; state?: ConnectionState };

export interface WebSocketOptions {
  httpServer: HttpServer;
  path: string;
  apiSchema: GraphQLSchema;
  /** Parses, validates and bounds every operation exactly as HTTP does. */
  guard: OperationGuard;
  /** Larger frames close the socket with 1009 (Message Too Big). */
  maxMessageBytes: number;
  identity: CallerDirectory;
  subscriptions: LocationSubscriptions;
  /**
   * How often an open socket's role and tenant are read again, so a membership change whose Redis
   * announcement was missed still closes the socket within this time.
   */
  callerRecheckMs: number;
  /** Calls back with a user id whenever an ADMIN moved that user to another tenant. */
  onMembershipChanged(listener: (userId: string) => void): () => void;
  /** Runs a query or mutation as the caller through the gateway (same path as HTTP). */
  executeOperation(document: DocumentNode, operationName: string | undefined, variables: Record<string, unknown>, caller: Caller): Promise<ExecutionResult>;
  logger: Logger;
}

function asErrors(error: unknown): GraphQLError[] {
  if (error instanceof GraphQLError) return [error];
  return [new FleetError('INTERNAL_SERVER_ERROR', 'Internal server error')];
}

export function startWebSocketServer(options: WebSocketOptions) {
  const { logger } = options;
  const wsServer = new WebSocketServer({ server: options.httpServer, path: options.path, maxPayload: options.maxMessageBytes });
  const subscriptionType = options.apiSchema.getSubscriptionType();
  const locationUpdated = subscriptionType?.getFields().locationUpdated;
  if (!locationUpdated) throw new Error('the supergraph has no Subscription.locationUpdated');

  const socketsByUser = new Map<string, Set<WebSocket>>();
  const stopWatchingMemberships = options.onMembershipChanged((userId) => {
    for (const socket of socketsByUser.get(userId) ?? []) socket.close(CLOSE_MEMBERSHIP_CHANGED, 'Tenant membership changed: reconnect');
  });

  const cleanup = useServer<Record<string, unknown> | undefined, Extra>(
    {
      schema: options.apiSchema,
      onConnect: async (ctx) => {
        const params = ctx.connectionParams ?? {};
        const token = bearerToken(params.authorization ?? params.Authorization);
        const socket = ctx.extra.socket;
        if (!token) {
          socket.close(CLOSE_UNAUTHORIZED, 'Unauthorized: connection_init needs { authorization: "Bearer <idToken>" }');
          return false;
        }
        try {
          const { caller, expiresAt } = await options.identity.callerFor(token);
          const state: ConnectionState = {
            caller,
            token,
            open: 0,
            dropAsSlow: () => {
              socket.close(CLOSE_TOO_SLOW, 'Subscriber too slow: reconnect and re-read lastLocation');
              // A client that never reads would hold its buffers until ws' 30 s close timeout.
              setTimeout(() => socket.terminate(), SLOW_CLOSE_GRACE_MS).unref();
            },
          };
          state.expiry = setTimeout(() => socket.close(CLOSE_UNAUTHORIZED, 'Token expired'), Math.max(0, expiresAt - Date.now()));
          state.recheck = setInterval(() => {
            options.identity.callerFor(token).then(
              ({ caller: now }) => {
                if (now.role !== state.caller.role || now.tenantId !== state.caller.tenantId) {
                  socket.close(CLOSE_MEMBERSHIP_CHANGED, 'Tenant membership changed: reconnect');
                }
              },
              (error: unknown) => {
                if (error instanceof Unauthenticated) socket.close(CLOSE_UNAUTHORIZED, 'Token expired');
              },
            );
          }, options.callerRecheckMs);
          state.recheck.unref();
          ctx.extra.state = state;
          const sockets = socketsByUser.get(caller.userId) ?? new Set();
          sockets.add(socket);
          socketsByUser.set(caller.userId, sockets);
          return true;
        } catch (error) {
          if (!(error instanceof Unauthenticated)) logger.error({ err: error }, 'connection_init failed');
          socket.close(CLOSE_UNAUTHORIZED, 'Unauthorized');
          return false;
        }
      },
      onClose: (ctx) => {
        const state = ctx.extra.state;
        if (!state) return;
        clearTimeout(state.expiry);
        clearInterval(state.recheck);
        const sockets = socketsByUser.get(state.caller.userId);
        sockets?.delete(ctx.extra.socket);
        if (sockets?.size === 0) socketsByUser.delete(state.caller.userId);
      },
      onSubscribe: async (ctx, _id, payload) => {
        const state = ctx.extra.state;
        if (!state) return [new Unauthenticated()];
        // Role and tenant are read again for every operation: the database, not the moment the
        // socket opened, decides what the caller may do.
        try {
          state.caller = (await options.identity.callerFor(state.token)).caller;
        } catch (error) {
          if (error instanceof Unauthenticated) ctx.extra.socket.close(CLOSE_UNAUTHORIZED, 'Token expired');
          else logger.error({ err: error }, 'could not read the caller');
          return asErrors(error);
        }
        const checked = options.guard.check(payload);
        if (Array.isArray(checked)) return checked;
        const { document, operation, operationName, variables } = checked;
        const args: ExecutionArgs = { schema: options.apiSchema, document, operationName, variableValues: variables };

        if (operation.operation !== 'subscription') {
          return { ...args, contextValue: { run: () => options.executeOperation(document, operationName, payload.variables ?? {}, state.caller) } };
        }
        // Validation guarantees a subscription has exactly one root field, and the API has one.
        const field = operation.selectionSet.selections[0];
        if (field?.kind !== 'Field') return [new BadUserInput('query', 'a subscription selects locationUpdated')];
        const fieldArgs = getArgumentValues(locationUpdated, field, variables) as unknown as LocationUpdatedArgs;
        try {
          const queue = await options.subscriptions.subscribe({
            connection: state,
            document,
            operationName,
            variables: payload.variables ?? {},
            args: fieldArgs,
          });
          return { ...args, contextValue: { queue } };
        } catch (error) {
          if (!(error instanceof GraphQLError)) logger.error({ err: error }, 'subscribe failed');
          return asErrors(error);
        }
      },
      execute: (args) => (args.contextValue as { run: () => Promise<ExecutionResult> }).run(),
      subscribe: (args) => (args.contextValue as { queue: SubscriberQueue }).queue,
    },
    wsServer,
  );

  return {
    get connections(): number {
      return wsServer.clients.size;
    },
    async close(): Promise<void> {
      stopWatchingMemberships();
      await cleanup.dispose();
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
    },
  };
}
