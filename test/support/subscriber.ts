import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

/**
 * A live dashboard for tests: a real graphql-ws client that collects what a subscription delivers
 * and lets a test await "n results" or "the socket closed" as events, never by sleeping.
 */
export interface Collected {
  results: Array<{ data?: any; errors?: any[] }>;
  error: unknown;
  completed: boolean;
  /**
   * Resolves once at least `count` results arrived AND nothing more arrived for a quiet period,
   * with EVERYTHING that arrived: a duplicate or an extra after the first `count` is in the answer,
   * so an exact assertion on it proves exactly-once (rejects on error or after `timeoutMs`).
   */
  waitFor(count: number, timeoutMs?: number): Promise<Array<{ data?: any; errors?: any[] }>>;
  /** Resolves once what arrived satisfies `condition`. */
  until(condition: (results: Array<{ data?: any; errors?: any[] }>) => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves when the subscription ends with an error (returns it) or completes. */
  ended(timeoutMs?: number): Promise<unknown>;
  unsubscribe(): void;
}

/**
 * How long a subscription must stay silent before a test counts what it received. Longer than the
 * gateway's slowest hand-over of an already resolved event, so a duplicate cannot slip past it.
 */
const QUIET_MS = 750;

export interface Dashboard {
  client: Client;
  closed: Promise<{ code: number; reason: string }>;
  subscribe(query: string, variables?: Record<string, unknown>): Collected;
  /**
   * Hands the gateway a fresh token on the open socket, as a stock graphql-ws client can: a `ping`
   * whose payload carries it. Resolves with the pong's payload.
   */
  refresh(token: string): Promise<Record<string, unknown> | undefined>;
  dispose(): Promise<void>;
}

export function connectDashboard(wsUrl: string, token: string | null, params?: Record<string, unknown>): Dashboard {
  let onClosed: (event: { code: number; reason: string }) => void = () => undefined;
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    onClosed = resolve;
  });
  let socket: WebSocket | undefined;
  let onConnected: () => void = () => undefined;
  const connected = new Promise<void>((resolve) => {
    onConnected = resolve;
  });
  const pongs: Array<(payload: Record<string, unknown> | undefined) => void> = [];
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    connectionParams: params ?? (token ? { authorization: `Bearer ${token}` } : {}),
    on: {
      opened: (opened) => {
        socket = opened as WebSocket;
      },
      connected: () => onConnected(),
      pong: (received, payload) => {
        if (received) pongs.shift()?.(payload as Record<string, unknown> | undefined);
      },
      closed: (event) => {
        const { code, reason } = event as { code: number; reason: string };
        onClosed({ code, reason: String(reason) });
      },
    },
    onNonLazyError: () => undefined,
  });
  return {
    client,
    closed,
    async refresh(fresh) {
      await connected;
      const pong = new Promise<Record<string, unknown> | undefined>((resolve) => pongs.push(resolve));
      socket?.send(JSON.stringify({ type: 'ping', payload: { authorization: `Bearer ${fresh}` } }));
      return pong;
    },
    subscribe(query, variables = {}) {
      const waiters: Array<() => void> = [];
      const collected: Collected = {
        results: [],
        error: undefined,
        completed: false,
        async waitFor(count, timeoutMs = 20_000) {
          await until(() => collected.results.length >= count || collected.error !== undefined || collected.completed, timeoutMs, () =>
            `expected ${count} results, got ${collected.results.length}`,
          );
          if (collected.results.length < count) throw new Error(`subscription ended early: ${JSON.stringify(collected.error)}`);
          await quiet();
          return [...collected.results];
        },
        until(condition, timeoutMs = 20_000) {
          return until(() => condition(collected.results), timeoutMs, () => `condition not met after ${collected.results.length} results`);
        },
        ended(timeoutMs = 20_000) {
          return until(() => collected.error !== undefined || collected.completed, timeoutMs, () => 'subscription did not end').then(() => collected.error);
        },
        unsubscribe: () => unsubscribe(),
      };
      const notify = () => waiters.splice(0).forEach((wake) => wake());
      /** Until no result arrived for QUIET_MS: what a late duplicate would need to show up. */
      function quiet(): Promise<void> {
        return new Promise((resolve) => {
          let timer = setTimeout(done, QUIET_MS);
          const onResult = () => {
            clearTimeout(timer);
            timer = setTimeout(done, QUIET_MS);
            waiters.push(onResult);
          };
          waiters.push(onResult);
          function done() {
            const index = waiters.indexOf(onResult);
            if (index >= 0) waiters.splice(index, 1);
            resolve();
          }
        });
      }
      function until(done: () => boolean, timeoutMs: number, message: () => string): Promise<void> {
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(message())), timeoutMs);
          const check = () => {
            if (done()) {
              clearTimeout(timer);
              resolve();
            } else waiters.push(check);
          };
          check();
        });
      }
      const unsubscribe = client.subscribe(
        { query, variables },
        {
          next: (value) => {
            collected.results.push(value as { data?: any; errors?: any[] });
            notify();
          },
          error: (error) => {
            collected.error = error ?? 'error';
            notify();
          },
          complete: () => {
            collected.completed = true;
            notify();
          },
        },
      );
      return collected;
    },
    dispose: () => client.dispose() as Promise<void>,
  };
}
