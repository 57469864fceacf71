import type { Server as HttpServer } from 'node:http';
import {
  GraphQLError,
  getOperationAST,
  parse,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
} from 'graphql';
import { getArgumentValues, getVariableValues } from 'graphql/execution/values';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Caller } from '../lib/caller';
import { BadUserInput, FleetError, Unauthenticated } from '../lib/errors';
import type { Logger } from '../lib/logger';
import { IdentityUnavailable, bearerToken, type CallerDirectory } from './identity';
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

/** RFC 6455 "Try Again Later" too: the caller could not be established for a reason that is not the token's. */
export const CLOSE_TRY_AGAIN = 1013;

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
  identity: CallerDirectory;
  subscriptions: LocationSubscriptions;
  /**
   * How often an open socket's role and tenant are read again, so a membership change whose Redis
   * announcement was missed still closes the socket within this time (plus the identity cache's).
   */
  callerRecheckMs: number;
  /** Calls back with a user id whenever an ADMIN moved that user to another tenant. */
  onMembershipChanged(listener: (userId: string) => void): () => void;
  /** Runs a query or mutation as the caller through the gateway (same path as HTTP). */
  executeOperation(document: DocumentNode, operationName: string | undefined, variables: Record<string, unknown>, caller: Caller): Promise<ExecutionResult>;
  logger: Logger;
}

/** The same role and tenant: what the connection was authorized for still holds. */
function sameStanding(a: Caller, b: Caller): boolean {
  return a.userId === b.userId && a.role === b.role && a.tenantId === b.tenantId;
}

function asErrors(error: unknown): GraphQLError[] {
  if (error instanceof GraphQLError) return [error];
  return [new FleetError('INTERNAL_SERVER_ERROR', 'Internal server error')];
}

function inputErrors(errors: readonly GraphQLError[]): GraphQLError[] {
  return errors.map((e) => new FleetError('BAD_USER_INPUT', e.message, { field: 'query' }));
}

export function startWebSocketServer(options: WebSocketOptions) {
  const { logger } = options;
  const wsServer = new WebSocketServer({ server: options.httpServer, path: options.path });
  const subscriptionType = options.apiSchema.getSubscriptionType();
  const locationUpdated = subscriptionType?.getFields().locationUpdated;
  if (!locationUpdated) throw new Error('the supergraph has no Subscription.locationUpdated');

  const socketsByUser = new Map<string, Set<WebSocket>>();
  const stopWatchingMemberships = options.onMembershipChanged((userId) => {
    for (const socket of socketsByUser.get(userId) ?? []) socket.close(CLOSE_MEMBERSHIP_CHANGED, 'Tenant membership changed: reconnect');
  });

  /**
   * Reads the caller for the socket's token again and closes the socket when the answer is not
   * what the socket was authorized for: 4401 when the token stopped verifying, 4403 when the role or
   * tenant changed. Answers whether the socket may go on (a lookup that failed for another reason
   * leaves it open: a busy database is not a reason to drop anybody).
   */
  const stillAuthorized = async (socket: WebSocket, state: ConnectionState): Promise<boolean> => {
    try {
      const { caller } = await options.identity.callerFor(state.token);
      if (sameStanding(caller, state.caller)) return true;
      socket.close(CLOSE_MEMBERSHIP_CHANGED, 'Tenant membership changed: reconnect');
      return false;
    } catch (error) {
      if (error instanceof Unauthenticated) {
        socket.close(CLOSE_UNAUTHORIZED, 'Token expired');
        return false;
      }
      logger.warn({ err: error }, 'could not re-read the caller of an open socket');
      return true;
    }
  };

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
        let established: { caller: Caller; expiresAt: number };
        try {
          established = await options.identity.callerFor(token);
        } catch (error) {
          if (error instanceof Unauthenticated) socket.close(CLOSE_UNAUTHORIZED, 'Unauthorized');
          else {
            // Not the token's fault: 4401 would make clients sign the user out. 1013 makes them retry.
            logger.error({ err: error }, 'connection_init could not establish the caller');
            const retryAfterMs = error instanceof IdentityUnavailable ? error.retryAfterMs : 1000;
            socket.close(CLOSE_TRY_AGAIN, `Try again later: retry in ${retryAfterMs} ms`);
          }
          return false;
        }
        const { caller, expiresAt } = established;
        // The socket is bound to this caller: every subscription on it is authorized for it, and
        // any later read that disagrees closes the socket (4403), whatever else was sent on it.
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
        state.recheck = setInterval(() => void stillAuthorized(socket, state), options.callerRecheckMs);
        state.recheck.unref();
        ctx.extra.state = state;
        const sockets = socketsByUser.get(caller.userId) ?? new Set();
        sockets.add(socket);
        socketsByUser.set(caller.userId, sockets);
        return true;
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
        // Role and tenant are read again for every operation: the records, not the moment the
        // socket opened, decide; a caller who no longer matches the socket loses the socket.
        if (!(await stillAuthorized(ctx.extra.socket, state))) return [new Unauthenticated('The connection is closing')];
        let document: DocumentNode;
        try {
          document = parse(payload.query);
        } catch (error) {
          return inputErrors([error as GraphQLError]);
        }
        const validationErrors = validate(options.apiSchema, document);
        if (validationErrors.length) return inputErrors(validationErrors);
        const operationName = payload.operationName ?? undefined;
        const operation = getOperationAST(document, operationName);
        if (!operation) return [new BadUserInput('operationName', 'operationName does not name an operation of the document')];
        const coerced = getVariableValues(options.apiSchema, operation.variableDefinitions ?? [], payload.variables ?? {});
        if (coerced.errors) return inputErrors(coerced.errors);
        const variables = coerced.coerced;
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
