import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

/**
 * Many graphql-ws subscribers in a worker thread, so parsing thousands of results does not run on
 * the main thread where the gateway (and the subgraphs) run. Times are absolute
 * (`performance.timeOrigin + performance.now()`), comparable with `absoluteNow()` on the main thread.
 *
 * The worker counts deliveries per location id and reports an id as soon as every subscriber has
 * it (`onComplete(id, lastArrival)`). Plain JavaScript (eval'd), so it needs no TypeScript loader.
 */
export const absoluteNow = (): number => performance.timeOrigin + performance.now();

export interface SubscriberPoolOptions {
  wsUrl: string;
  token: string;
  sockets: number;
  /** One operation per subscriber (the same text for all, or a different one each). */
  queries: string[];
  variables: Record<string, unknown>;
}

export interface SubscriberPool {
  /** id → time the last subscriber received it (absolute ms). */
  completed: Map<string, number>;
  /** Total results the subscribers received so far. */
  received(): Promise<number>;
  errors: string[];
  close(): Promise<void>;
}

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
const { createClient } = require(workerData.paths.graphqlWs);
const WebSocket = require(workerData.paths.ws);
const { wsUrl, token, sockets, queries, variables } = workerData;
const at = () => performance.timeOrigin + performance.now();
const expected = queries.length;
const counts = new Map();
let received = 0;
const clients = [];
const disposers = [];
function fail(message) { parentPort.postMessage({ type: 'error', message: String(message).slice(0, 300) }); }
async function start() {
  for (let i = 0; i < sockets; i++) {
    await new Promise((resolve, reject) => {
      const client = createClient({
        url: wsUrl, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0,
        connectionParams: { authorization: 'Bearer ' + token },
        on: { connected: () => resolve(), closed: (e) => reject(new Error('socket closed: ' + (e && e.code))) },
        onNonLazyError: reject,
      });
      clients.push(client);
    });
  }
  queries.forEach((query, i) => {
    const client = clients[i % clients.length];
    disposers.push(client.subscribe({ query, variables }, {
      next: (result) => {
        const now = at();
        received++;
        if (result.errors) fail(JSON.stringify(result.errors));
        const location = result.data && result.data.locationUpdated;
        if (!location || !location.id) return;
        const count = (counts.get(location.id) || 0) + 1;
        counts.set(location.id, count);
        if (count === expected) parentPort.postMessage({ type: 'complete', id: location.id, at: now });
      },
      error: (error) => fail(error && error.message ? error.message : JSON.stringify(error)),
      complete: () => {},
    }));
  });
  parentPort.postMessage({ type: 'subscribed' });
}
parentPort.on('message', async (message) => {
  if (message.type === 'received') parentPort.postMessage({ type: 'received', received });
  if (message.type === 'close') {
    for (const dispose of disposers) dispose();
    await Promise.all(clients.map((client) => client.dispose()));
    parentPort.postMessage({ type: 'closed' });
    parentPort.close();
  }
});
start().catch((error) => parentPort.postMessage({ type: 'failed', message: String(error && error.message || error) }));
`;

export async function startSubscriberPool(options: SubscriberPoolOptions): Promise<SubscriberPool> {
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { ...options, paths: { graphqlWs: require.resolve('graphql-ws'), ws: require.resolve('ws') } },
  });
  const completed = new Map<string, number>();
  const errors: string[] = [];
  const waiting = new Map<string, Array<(message: any) => void>>();
  const waitFor = (type: string, timeoutMs: number) =>
    new Promise<any>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`subscriber worker: no '${type}' within ${timeoutMs} ms`)), timeoutMs);
      timer.unref();
      const list = waiting.get(type) ?? [];
      list.push((message) => {
        clearTimeout(timer);
        resolve(message);
      });
      waiting.set(type, list);
    });
  let exited = false;
  worker.on('message', (message: { type: string; id?: string; at?: number; message?: string }) => {
    if (message.type === 'complete') completed.set(message.id!, message.at!);
    else if (message.type === 'error' && errors.length < 20) errors.push(message.message!);
    const list = waiting.get(message.type);
    if (list?.length) list.shift()!(message);
  });
  worker.on('error', (error) => errors.push(String(error)));
  worker.on('exit', () => (exited = true));
  const subscribed = waitFor('subscribed', 30_000);
  const failed = waitFor('failed', 30_000).then((m) => Promise.reject(new Error(m.message)));
  failed.catch(() => undefined);
  try {
    await Promise.race([subscribed, failed]);
  } catch (error) {
    await worker.terminate();
    throw error;
  }
  return {
    completed,
    errors,
    received: async () => {
      const reply = waitFor('received', 5_000);
      worker.postMessage({ type: 'received' });
      return (await reply).received as number;
    },
    close: async () => {
      if (exited) return;
      const closed = waitFor('closed', 10_000).catch(() => undefined);
      worker.postMessage({ type: 'close' });
      await closed;
      await worker.terminate();
    },
  };
}
