import { createClient, type Client } from 'graphql-ws/client';
import { FleetApiError, FleetConnectionError, isApiErrorList } from './errors';
import { LocationUpdatedDocument, type LocationUpdatedSubscription, type LocationUpdatedSubscriptionVariables, type DeviceSequenceInput } from './graphql';
import { refreshTime, tokenTimes } from './tokens';

/**
 * The live side of the SDK: one graphql-ws socket per client, shared by its subscriptions.
 *
 * graphql-ws reconnects on its own after 1012 (gateway restarting), 1013 (too slow / caller not
 * established now) and network failures, and sends the same subscribe payload again; the payload's
 * `variables` is a getter, so every resend resumes (`after`) from what the stream delivered. What
 * graphql-ws treats as final is handled here: 4401 (token refused or expired) and 4403 (membership
 * changed) reconnect with a token fresh from the token source. Before the token expires it is
 * replaced on the open socket (a `ping` carrying it), so a healthy socket is never closed for it.
 */
export type ConnectionState = 'idle' | 'connecting' | 'live' | 'reconnecting' | 'signed-out';
export type LiveLocation = LocationUpdatedSubscription['locationUpdated'];

export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_FORBIDDEN = 4403;
/** Refused tokens in a row (without an accepted connection between) before the stream gives up. */
const MAX_AUTH_FAILURES = 3;
const SOCKET_OPEN = 1;

interface SocketLike {
  readyState: number;
  send(data: string): void;
}

export interface LiveConnectionOptions {
  url: string;
  getToken: (options?: { forceRefresh?: boolean }) => string | null | undefined | Promise<string | null | undefined>;
  webSocketImpl?: unknown;
  refreshLeadMs: number;
  reconnectDelayMs: { initial: number; max: number };
  onState?: (state: ConnectionState) => void;
}

/** The token source said there is no token: nobody is signed in. */
class SignedOut extends Error {
  constructor() {
    super('Signed out: the token source returned no token');
  }
}

const isCloseEvent = (value: unknown): value is { code: number; reason: string } =>
  typeof value === 'object' && value !== null && typeof (value as { code?: unknown }).code === 'number' && 'reason' in value;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class LiveConnection {
  readonly client: Client;
  state: ConnectionState = 'idle';
  /** 4401/4403 closes in a row before the server accepted a connection. */
  authFailures = 0;
  signedOut = false;
  private socket?: SocketLike;
  /** The token the open socket is authorized with, and one offered in a ping and not yet confirmed. */
  private token?: string;
  private offered?: string;
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private forceRefresh = false;
  private acknowledged = false;
  private wasLive = false;
  private streams = 0;
  private disposed = false;

  constructor(private readonly options: LiveConnectionOptions) {
    this.client = createClient({
      url: options.url,
      webSocketImpl: options.webSocketImpl,
      lazy: true,
      retryAttempts: Infinity,
      // Network errors, 1012, 1013, a token source that failed for a passing reason: retry. Not signing out.
      shouldRetry: (error) => !(error instanceof SignedOut),
      retryWait: (retries) => sleep(this.backoff(retries)),
      connectionParams: async () => {
        const token = await options.getToken({ forceRefresh: this.forceRefresh });
        this.forceRefresh = false;
        if (!token) {
          this.signedOut = true;
          this.setState('signed-out');
          throw new SignedOut();
        }
        this.signedOut = false;
        this.token = token;
        return { authorization: `Bearer ${token}` };
      },
      on: {
        connecting: (retrying) => this.setState(retrying || this.wasLive ? 'reconnecting' : 'connecting'),
        opened: (socket) => {
          this.socket = socket as SocketLike;
          this.acknowledged = false;
        },
        connected: () => {
          this.acknowledged = true;
          this.wasLive = true;
          this.authFailures = 0;
          this.setState('live');
          this.scheduleRefresh();
        },
        pong: (received, payload) => {
          if (received) this.refreshAnswered(payload as Record<string, unknown> | undefined);
        },
        closed: (event) => this.socketClosed(event),
      },
    });
  }

  /** Reconnect delay: doubling from `initial` up to `max`, with jitter so replicas are not hit at once. */
  backoff(retries: number): number {
    const { initial, max } = this.options.reconnectDelayMs;
    return Math.min(max, initial * 2 ** retries) * (0.5 + Math.random() / 2);
  }

  acquire(): void {
    this.streams += 1;
  }

  release(): void {
    this.streams -= 1;
  }

  async close(): Promise<void> {
    this.disposed = true;
    clearTimeout(this.refreshTimer);
    await this.client.dispose();
    this.setState('idle');
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.options.onState?.(state);
  }

  private socketClosed(event: unknown): void {
    clearTimeout(this.refreshTimer);
    this.socket = undefined;
    this.offered = undefined;
    const code = isCloseEvent(event) ? event.code : undefined;
    if (code === CLOSE_UNAUTHORIZED || code === CLOSE_FORBIDDEN) {
      // The next connection needs a new token: this one expired, or no longer says who the user is now.
      this.forceRefresh = true;
      if (!this.acknowledged) this.authFailures += 1;
    }
    if (this.signedOut) return;
    this.setState(this.streams > 0 && !this.disposed ? 'reconnecting' : 'idle');
  }

  private scheduleRefresh(at = this.token ? refreshTime(tokenTimes(this.token), this.options.refreshLeadMs) : undefined): void {
    clearTimeout(this.refreshTimer);
    if (at === undefined || this.disposed) return;
    this.refreshTimer = setTimeout(() => void this.refreshOnSocket(), Math.max(0, at - Date.now()));
  }

  /** Hands the open socket a fresh token (graphql-ws ping); the pong says until when it holds. */
  private async refreshOnSocket(): Promise<void> {
    const socket = this.socket;
    if (!socket || socket.readyState !== SOCKET_OPEN) return;
    let token: string | null | undefined;
    try {
      token = await this.options.getToken({ forceRefresh: true });
    } catch {
      // A passing failure of the token source: try again shortly; at expiry the server closes 4401.
      this.scheduleRefresh(Date.now() + 1_000);
      return;
    }
    if (this.socket !== socket || socket.readyState !== SOCKET_OPEN) return;
    if (!token) return; // signed out: the server closes the socket when the token expires
    if (token === this.token) {
      this.scheduleRefresh(Date.now() + 1_000);
      return;
    }
    this.offered = token;
    socket.send(JSON.stringify({ type: 'ping', payload: { authorization: `Bearer ${token}` } }));
  }

  private refreshAnswered(payload: Record<string, unknown> | undefined): void {
    if (!this.offered || !payload) return;
    if (typeof payload.expiresAt === 'string') {
      this.token = this.offered;
      this.offered = undefined;
      this.scheduleRefresh(refreshTime({ issuedAt: Date.now(), expiresAt: Date.parse(payload.expiresAt) }, this.options.refreshLeadMs));
    } else if (payload.error === 'TRY_AGAIN') {
      this.offered = undefined;
      const retryAfterMs = typeof payload.retryAfterMs === 'number' ? payload.retryAfterMs : 1_000;
      this.scheduleRefresh(Date.now() + retryAfterMs);
    }
  }
}

export interface LocationStreamOptions {
  /**
   * Errors the stream survives: a location the platform could not resolve after retrying (it is
   * named in the error and skipped). Without this option they are dropped.
   */
  onError?: (error: FleetApiError) => void;
}

/**
 * `locationUpdated` as an async iterator. Each location is delivered once, in acceptance order per
 * device: a reconnect resumes with `after` (the last sequence delivered per device) and anything at
 * or below that sequence is dropped. A device the stream never delivered a location of is resumed
 * only if `after` named it: pass `{ deviceId, sequence: lastLocation.sequence }` for devices you
 * already show. The buffer is unbounded: read it.
 */
export class LocationStream implements AsyncIterableIterator<LiveLocation> {
  private readonly buffer: LiveLocation[] = [];
  private readonly sequences = new Map<string, number>();
  private readonly waiters: Array<() => void> = [];
  private failure?: Error;
  private ended = false;
  private lastError?: FleetApiError;
  private unsubscribe?: () => void;
  private restartTimer?: ReturnType<typeof setTimeout>;
  private restarts = 0;

  constructor(
    private readonly connection: LiveConnection,
    private readonly variables: LocationUpdatedSubscriptionVariables,
    private readonly options: LocationStreamOptions = {},
  ) {
    const given = variables.after ?? [];
    for (const { deviceId, sequence } of Array.isArray(given) ? given : [given]) this.sequences.set(String(deviceId), sequence);
    connection.acquire();
    this.subscribe();
  }

  /** The last sequence delivered per device: where a resume starts. */
  get after(): DeviceSequenceInput[] {
    return [...this.sequences].map(([deviceId, sequence]) => ({ deviceId, sequence }));
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<LiveLocation>> {
    for (;;) {
      const location = this.buffer.shift();
      if (location) return { value: location, done: false };
      if (this.failure) {
        const failure = this.failure;
        this.failure = undefined;
        throw failure;
      }
      if (this.ended) return { value: undefined, done: true };
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  async return(): Promise<IteratorResult<LiveLocation>> {
    this.close();
    return { value: undefined, done: true };
  }

  /** Unsubscribes; locations already received are still handed out, then the iterator ends. */
  close(): void {
    this.end();
  }

  private subscribe(): void {
    const stream = this;
    this.lastError = undefined;
    const payload = {
      query: LocationUpdatedDocument.toString(),
      operationName: 'LocationUpdated',
      get variables() {
        const after = stream.after;
        return { ...stream.variables, after: after.length ? after : undefined };
      },
    };
    this.unsubscribe = this.connection.client.subscribe(payload, {
      next: (result) => this.receive(result as { data?: LocationUpdatedSubscription | null; errors?: unknown }),
      error: (error) => this.failed(error),
      complete: () => this.completed(),
    });
  }

  private receive(result: { data?: LocationUpdatedSubscription | null; errors?: unknown }): void {
    if (isApiErrorList(result.errors) && result.errors.length) {
      const error = new FleetApiError(result.errors);
      this.lastError = error;
      if (error.code === 'INTERNAL_SERVER_ERROR') this.options.onError?.(error);
    }
    const location = result.data?.locationUpdated;
    if (!location) return;
    this.restarts = 0;
    const last = this.sequences.get(location.device.id);
    if (last !== undefined && location.sequence <= last) return; // already delivered: a replay at a reconnect's seam
    this.sequences.set(location.device.id, location.sequence);
    this.buffer.push(location);
    this.wake();
  }

  private failed(error: unknown): void {
    if (this.ended) return;
    if (error instanceof SignedOut) return this.end(new FleetApiError([{ message: error.message, extensions: { code: 'UNAUTHENTICATED' } }]));
    if (isApiErrorList(error)) return this.end(new FleetApiError(error));
    if (isCloseEvent(error) && (error.code === CLOSE_UNAUTHORIZED || error.code === CLOSE_FORBIDDEN)) {
      if (this.connection.authFailures >= MAX_AUTH_FAILURES) {
        return this.end(new FleetApiError([{ message: `The token was refused ${MAX_AUTH_FAILURES} times: ${error.reason}`, extensions: { code: 'UNAUTHENTICATED' } }]));
      }
      return this.restart(this.connection.backoff(this.connection.authFailures));
    }
    if (isCloseEvent(error)) return this.end(new FleetConnectionError(error.code, String(error.reason)));
    this.end(error instanceof Error ? error : new Error(String(error)));
  }

  private completed(): void {
    if (this.ended) return;
    const error = this.lastError;
    // Shed by an overloaded gateway: it asks to come back (with `after`, which the payload carries).
    if (error?.code === 'RATE_LIMITED') return this.restart(error.retryAfterMs ?? this.connection.backoff(this.restarts));
    this.end(error);
  }

  private restart(delayMs: number): void {
    this.unsubscribe = undefined;
    this.restarts += 1;
    this.restartTimer = setTimeout(() => {
      if (!this.ended) this.subscribe();
    }, delayMs);
  }

  private end(failure?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = failure;
    clearTimeout(this.restartTimer);
    this.unsubscribe?.();
    this.connection.release();
    this.wake();
  }

  private wake(): void {
    for (const resolve of this.waiters.splice(0)) resolve();
  }
}
