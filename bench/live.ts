import { once } from 'node:events';
import { createClient, type Client } from 'graphql-ws';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { locationChannel } from '../lib/channels';
import type { TestStack } from '../test/support/stack';
import { now, withTimeout } from './stats';

/**
 * Subscribers and observers with arrival timestamps (performance.now(), same clock as the rest of
 * the process): a graphql-ws socket as a dashboard opens it, and a plain Redis subscriber on a
 * location channel, which sees each event when the bridge publishes it (the gateway subscribes to
 * the same channel), so a latency can be split into "before Redis" and "gateway".
 */
export interface Socket {
  client: Client;
  dispose(): Promise<void>;
}

export async function openSocket(wsUrl: string, token: string): Promise<Socket> {
  let opened!: () => void;
  let failed!: (error: unknown) => void;
  const connected = new Promise<void>((resolve, reject) => {
    opened = resolve;
    failed = reject;
  });
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    connectionParams: { authorization: `Bearer ${token}` },
    on: {
      connected: () => opened(),
      closed: (event) => failed(new Error(`socket closed before it was acknowledged: ${(event as { code?: number }).code}`)),
    },
    onNonLazyError: (error) => failed(error),
  });
  await withTimeout(connected, 10_000, 'connection_ack');
  return { client, dispose: () => client.dispose() as Promise<void> };
}

/** Subscribes; `onNext` gets every result with its arrival time. Returns the unsubscribe function. */
export function subscribeTimed(
  socket: Socket,
  query: string,
  variables: Record<string, unknown>,
  onNext: (result: { data?: any; errors?: unknown[] }, at: number) => void,
  onError: (error: unknown) => void = () => undefined,
): () => void {
  return socket.client.subscribe(
    { query, variables },
    { next: (value) => onNext(value as { data?: any; errors?: unknown[] }, now()), error: onError, complete: () => undefined },
  );
}

/** Resolves once the gateway holds `count` subscriptions (they are authorized and follow Redis). */
export async function waitForGatewaySubscriptions(stack: TestStack, count: number, timeoutMs = 30_000): Promise<void> {
  const subscriptions = stack.gateway.subscriptions;
  const signal = AbortSignal.timeout(timeoutMs);
  while (subscriptions.size < count) await once(subscriptions, 'changed', { signal });
}

export async function waitForGatewaySubscriptionsAtMost(stack: TestStack, count: number, timeoutMs = 30_000): Promise<void> {
  const subscriptions = stack.gateway.subscriptions;
  const signal = AbortSignal.timeout(timeoutMs);
  while (subscriptions.size > count) await once(subscriptions, 'changed', { signal });
}

export interface ChannelObserver {
  /** location id → arrival time on the Redis channel. */
  arrivals: Map<string, number>;
  close(): void;
}

/** Watches the device's Redis channel as the gateway does, recording when each location arrived. */
export async function observeDeviceChannel(stack: TestStack, tenantId: string, deviceId: string): Promise<ChannelObserver> {
  const redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  const channel = locationChannel(stack.redisPrefix, { tenantId, deviceId });
  const arrivals = new Map<string, number>();
  redis.on('message', (_channel: string, message: string) => {
    const at = now();
    try {
      const id = (JSON.parse(message) as { id?: string }).id;
      if (id && !arrivals.has(id)) arrivals.set(id, at);
    } catch {
      // not a location event: ignore
    }
  });
  await redis.subscribe(channel);
  return { arrivals, close: () => redis.disconnect() };
}
