import type { Server as HttpServer } from 'node:http';
import { GraphQLError, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { getArgumentValues } from 'graphql/execution/values';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Caller } from '../lib/caller';
import { BadUserInput, FleetError, Unauthenticated } from '../lib/errors';
import type { Logger } from '../lib/logger';
import { IdentityUnavailable, bearerToken, type CallerDirectory } from './identity';
import type { OperationGuard } from './operationGuard';
import type { LocationSubscriptions, LocationUpdatedArgs, SubscriberConnection } from './subscriptions/locationSubscriptions';
import type { SubscriberStream } from './subscriptions/subscriberStream';

/**
 * graphql-ws on the gateway's `/graphql` path (subprotocol `graphql-transport-ws`).
 *
 * The token travels in `connection_init` (`{ authorization: "Bearer <idToken>" }`); a missing or
 * bad one closes the socket with 4401, and the socket is closed with 4401 when the token expires,
 * unless the client hands a fresh token of the same user in a `ping` (`{ type: "ping", payload:
 * { authorization: "Bearer <idToken>" } }`), which moves the expiry without touching any
 * subscription. Subscriptions are validated against the supergraph's API schema and served by
 * LocationSubscriptions; queries and mutations sent over the socket run through the same executor
 * as HTTP.
 */
export const CLOSE_UNAUTHORIZED = 4401;
/** The caller's tenant changed while connected (or a refresh named another user): reconnect. */
export const CLOSE_FORBIDDEN = 4403;
/** RFC 6455 "Try Again Later": the client stopped reading, or its caller could not be established now. */
export const CLOSE_TRY_AGAIN = 1013;
/** RFC 6455 "Service Restart": the gateway is going away; reconnect (to another replica) and resume. */
export const CLOSE_SERVICE_RESTART = 1012;
/** How long a dropped slow client has to read up to the close frame before its socket is cut. */
const SLOW_CLOSE_GRACE_MS = 5_000;

interface ConnectionState extends SubscriberConnection {
  token: string;
  /** When the socket's token expires (ms since the epoch). */
  expiresAt: number;
  expiry?: NodeJS.Timeout;
  recheck?: NodeJS.Timeout;
}

type Extra = { socket: WebSocket; state?: ConnectionState };

export interface WebSocketOptions {
  httpServer: HttpServer;
  path: string;
  /** The current API schema (it changes when the supergraph is reloaded). */
  apiSchema(): GraphQLSchema;
  /** Parses, validates and bounds every operation exactly as HTTP does. */
  guard: OperationGuard;
  /** Larger frames close the socket with 1009 (Message Too Big). */
  maxMessageBytes: number;
  identity: CallerDirectory;
  subscriptions: LocationSubscriptions;
  /**
   * How often an open socket's role and tenant are read again, so a membership change whose Redis
   * announcement was missed still closes the socket within this time (plus the identity cache's).
   */
  callerRecheckMs: number;
  /** Results waiting to be written to one connection before it is dropped as too slow. */
  queueCapacity: number;
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

/** The same role and tenant: what the connection was authorized for still holds. */
function sameStanding(a: Caller, b: Caller): boolean {
  return a.userId === b.userId && a.role === b.role && a.tenantId === b.tenantId;
}

/** Closes with 1013 and cuts the socket if its reader does not even take the close frame. */
function dropAsSlow(socket: WebSocket): void {
  socket.close(CLOSE_TRY_AGAIN, 'Subscriber too slow: reconnect and resume');
  // A client that never reads would hold its buffers until ws' 30 s close timeout.
  setTimeout(() => socket.terminate(), SLOW_CLOSE_GRACE_MS).unref();
}

export function startWebSocketServer(options: WebSocketOptions) {
  const { logger } = options;
  const wsServer = new WebSocketServer({ server: options.httpServer, path: options.path, maxPayload: options.maxMessageBytes });

  const socketsByUser = new Map<string, Set<WebSocket>>();
  const stopWatchingMemberships = options.onMembershipChanged((userId) => {
    for (const socket of socketsByUser.get(userId) ?? []) socket.close(CLOSE_FORBIDDEN, 'Tenant membership changed: reconnect');
  });

  /**
   * Reads the caller for the socket's token again and closes the socket when the answer is not
   * what the socket was authorized for: 4401 when the token stopped verifying, 4403 when the role or
   * tenant changed. Answers whether the socket may go on (a lookup that failed for another reason
   * leaves it open: a busy database is not a reason to drop anybody).
   */
  const stillAuthorized = async (socket: WebSocket, state: ConnectionState): Promise<boolean> => {
    // The token was verified in full on connect (or refresh); what can change is time and records.
    if (Date.now() >= state.expiresAt) {
      socket.close(CLOSE_UNAUTHORIZED, 'Token expired');
      return false;
    }
    try {
      const now = await options.identity.standingOf(state.caller.userId);
      if (now.role === state.caller.role && now.tenantId === state.caller.tenantId) return true;
      socket.close(CLOSE_FORBIDDEN, 'Tenant membership changed: reconnect');
      return false;
    } catch (error) {
      logger.warn({ err: error }, 'could not re-read the caller of an open socket');
      return true;
    }
  };

  const expireAt = (socket: WebSocket, state: ConnectionState, expiresAt: number) => {
    state.expiresAt = expiresAt;
    clearTimeout(state.expiry);
    state.expiry = setTimeout(() => socket.close(CLOSE_UNAUTHORIZED, 'Token expired'), Math.max(0, expiresAt - Date.now()));
  };

  /**
   * A fresh token for the same user, handed over in a ping: verified in full, then it replaces the
   * socket's token and moves its expiry. The pong says until when (`expiresAt`), or why not.
   */
  const refresh = async (socket: WebSocket, state: ConnectionState, payload: Record<string, unknown>): Promise<void> => {
    const token = bearerToken(payload.authorization ?? payload.Authorization);
    delete payload.authorization;
    delete payload.Authorization;
    if (!token) {
      socket.close(CLOSE_UNAUTHORIZED, 'Unauthorized: the refresh token is not "Bearer <idToken>"');
      return;
    }
    try {
      const { caller, expiresAt } = await options.identity.callerFor(token);
      if (caller.userId !== state.caller.userId || !sameStanding(caller, state.caller)) {
        socket.close(CLOSE_FORBIDDEN, caller.userId !== state.caller.userId ? 'The token belongs to another user' : 'Tenant membership changed: reconnect');
        return;
      }
      state.token = token;
      expireAt(socket, state, expiresAt);
      payload.expiresAt = new Date(expiresAt).toISOString();
    } catch (error) {
      if (error instanceof Unauthenticated) {
        socket.close(CLOSE_UNAUTHORIZED, 'Unauthorized');
        return;
      }
      // Keep the socket and the old token; the client may try again.
      logger.warn({ err: error }, 'could not verify a refreshed token');
      payload.error = 'TRY_AGAIN';
      payload.retryAfterMs = error instanceof IdentityUnavailable ? error.retryAfterMs : 1000;
    }
  };

  const cleanup = useServer<Record<string, unknown> | undefined, Extra>(
    {
      schema: () => options.apiSchema(),
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
        // The client may have gone while its caller was read: then nothing must be started for it
        // (an expiry timer would keep the socket's state until the token expires).
        if (socket.readyState !== socket.OPEN) return false;
        const { caller, expiresAt } = established;
        // Frames a batch hands a socket in one go are corked and leave in one write, not one each.
        const raw = (socket as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
        let corked = false;
        // Frames written while the socket was still backed up from an earlier turn: a reader that
        // keeps up empties its buffer between turns and starts again from 0; one that stopped does not.
        let backlog = 0;
        let backedUp = false;
        const uncork = () => {
          corked = false;
          raw?.uncork();
        };
        // The socket is bound to this caller: every subscription on it is authorized for it, and
        // any later read that disagrees closes the socket (4403), whatever else was sent on it.
        const state: ConnectionState = {
          caller,
          token,
          expiresAt,
          open: 0,
          sink: {
            send: (frame) => {
              if (socket.readyState !== socket.OPEN) return;
              if (!corked) {
                backedUp = socket.bufferedAmount > 0;
                if (!backedUp) backlog = 0;
                corked = true;
                raw?.cork();
                process.nextTick(uncork);
              }
              if (backedUp && ++backlog > options.queueCapacity) {
                options.subscriptions.noteSlowConnection();
                logger.warn({ userId: caller.userId, capacity: options.queueCapacity }, 'dropped a connection that stopped reading');
                dropAsSlow(socket);
                return;
              }
              socket.send(frame);
            },
          },
        };
        expireAt(socket, state, expiresAt);
        state.recheck = setInterval(() => void stillAuthorized(socket, state), options.callerRecheckMs);
        state.recheck.unref();
        ctx.extra.state = state;
        const sockets = socketsByUser.get(caller.userId) ?? new Set();
        sockets.add(socket);
        socketsByUser.set(caller.userId, sockets);
        return true;
      },
      onPing: async (ctx, payload) => {
        const state = ctx.extra.state;
        if (state && payload && ('authorization' in payload || 'Authorization' in payload)) await refresh(ctx.extra.socket, state, payload);
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
      onSubscribe: async (ctx, id, payload) => {
        const state = ctx.extra.state;
        if (!state) return [new Unauthenticated()];
        // Role and tenant are read again for every operation: the records, not the moment the
        // socket opened, decide; a caller who no longer matches the socket loses the socket.
        if (!(await stillAuthorized(ctx.extra.socket, state))) return [new Unauthenticated('The connection is closing')];
        const schema = options.apiSchema();
        const checked = options.guard.check(payload);
        if (Array.isArray(checked)) return checked;
        const { document, operation, operationName, variables } = checked;
        const args: ExecutionArgs = { schema, document, operationName, variableValues: variables };

        if (operation.operation !== 'subscription') {
          return { ...args, contextValue: { run: () => options.executeOperation(document, operationName, payload.variables ?? {}, state.caller) } };
        }
        // Validation guarantees a subscription has exactly one root field, and the API has one.
        const locationUpdated = schema.getSubscriptionType()?.getFields().locationUpdated;
        const field = operation.selectionSet.selections[0];
        if (!locationUpdated || field?.kind !== 'Field') return [new BadUserInput('query', 'a subscription selects locationUpdated')];
        const fieldArgs = getArgumentValues(locationUpdated, field, variables) as unknown as LocationUpdatedArgs;
        try {
          const stream = await options.subscriptions.subscribe({
            connection: state,
            id,
            document,
            operationName,
            variables: payload.variables ?? {},
            args: fieldArgs,
          });
          return { ...args, contextValue: { stream } };
        } catch (error) {
          if (!(error instanceof GraphQLError)) logger.error({ err: error }, 'subscribe failed');
          return asErrors(error);
        }
      },
      execute: (args) => (args.contextValue as { run: () => Promise<ExecutionResult> }).run(),
      subscribe: (args) => (args.contextValue as { stream: SubscriberStream }).stream,
    },
    wsServer,
  );

  return {
    get connections(): number {
      return wsServer.clients.size;
    },
    /**
     * Tells every client to reconnect elsewhere (1012, Service Restart), after what was already
     * handed to their sockets: ws flushes queued frames before the close frame.
     */
    closeAll(code = CLOSE_SERVICE_RESTART, reason = 'Gateway restarting: reconnect and resume'): void {
      for (const socket of wsServer.clients) socket.close(code, reason);
    },
    async close(): Promise<void> {
      stopWatchingMemberships();
      await cleanup.dispose();
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
    },
  };
}
