import { Worker } from 'node:worker_threads';

/**
 * A closed-loop HTTP load generator in a worker thread, so the client does not share the event
 * loop with the gateway and subgraphs it measures (they run on the main thread). `concurrency`
 * lanes each send one POST at a time over keep-alive connections until `durationMs` passed or
 * `maxRequests` were started. Plain JavaScript (eval'd), so the worker needs no TypeScript loader.
 */
export interface LoadOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  concurrency: number;
  durationMs: number;
  maxRequests: number;
}

export interface LoadResult {
  /** Latencies (ms) of requests answered 200 without GraphQL errors. */
  latencies: number[];
  errors: number;
  firstError: string | null;
  elapsedMs: number;
}

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const { performance } = require('node:perf_hooks');
const { url, headers, body, concurrency, durationMs, maxRequests } = workerData;
const target = new URL(url);
if (target.hostname !== '127.0.0.1' && target.hostname !== 'localhost') throw new Error('load targets must be local');
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const requestHeaders = { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
const latencies = [];
let errors = 0;
let firstError = null;
let started = 0;
const t0 = performance.now();
const end = t0 + durationMs;
function fail(message) {
  errors++;
  if (firstError === null) firstError = message.slice(0, 300);
}
function one() {
  return new Promise((resolve) => {
    const start = performance.now();
    const req = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers: requestHeaders },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => {
          const ms = performance.now() - start;
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200 || text.includes('"errors"')) fail(res.statusCode + ' ' + text);
          else latencies.push(ms);
          resolve();
        });
        res.on('error', (error) => { fail(String(error)); resolve(); });
      },
    );
    req.setTimeout(10000, () => req.destroy(new Error('request timed out')));
    req.on('error', (error) => { fail(String(error)); resolve(); });
    req.end(body);
  });
}
async function lane() {
  while (performance.now() < end && started < maxRequests) {
    started++;
    await one();
  }
}
Promise.all(Array.from({ length: concurrency }, lane)).then(() => {
  const elapsedMs = performance.now() - t0;
  agent.destroy();
  parentPort.postMessage({ latencies, errors, firstError, elapsedMs });
});
`;

export function runLoad(options: LoadOptions): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, { eval: true, workerData: options });
    let settled = false;
    const guard = setTimeout(() => {
      if (settled) return;
      settled = true;
      void worker.terminate();
      reject(new Error('load worker did not finish in time'));
    }, options.durationMs + 20_000);
    worker.once('message', (result: LoadResult) => {
      settled = true;
      clearTimeout(guard);
      void worker.terminate().then(() => resolve(result));
    });
    worker.once('error', (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      reject(error);
    });
    worker.once('exit', (code) => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      reject(new Error(`load worker exited with code ${code} before reporting`));
    });
  });
}
