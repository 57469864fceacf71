import http from 'node:http';
import https from 'node:https';
import type { Fetcher, FetcherResponse } from '@apollo/utils.fetcher';

/**
 * The gateway's HTTP client for subgraph fetches: node's own `http` with keep-alive connections, a
 * deadline per request, and a response that is read once as text. Every query costs several
 * subgraph fetches; in the gateway's CPU profile under load, Node's `fetch` (undici, WHATWG
 * streams, a transferable AbortSignal per request) was a quarter of all work (bench/README.md).
 * A subgraph answers a small JSON body over a long-lived local connection; nothing of fetch's
 * generality is needed.
 */
export interface SubgraphAnswer {
  status: number;
  contentType: string | null;
  body: string;
}

export class SubgraphTimeout extends Error {
  constructor(url: string, timeoutMs: number) {
    super(`${url} did not answer within ${timeoutMs} ms`);
    this.name = 'SubgraphTimeout';
  }
}

/**
 * An idle connection is closed by this side after IDLE_MS, well before the subgraph's server would
 * close it (lib/subgraph.ts keeps them 65 s): reusing a connection the server is closing at that
 * moment fails the request with "socket hang up".
 */
const IDLE_MS = 30_000;
const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 128, scheduling: 'lifo', timeout: IDLE_MS }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 128, scheduling: 'lifo', timeout: IDLE_MS }),
};

/** A gateway knows a handful of subgraph URLs: each is parsed once. */
const targets = new Map<string, URL>();

/** POSTs `body` and reads the whole answer; fails after `timeoutMs` (connection, request and answer together). */
export function postToSubgraph(url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<SubgraphAnswer> {
  let target = targets.get(url);
  if (!target) {
    target = new URL(url);
    targets.set(url, target);
  }
  const transport = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const request = transport.request(
      target,
      {
        method: 'POST',
        agent: agents[target.protocol as 'http:' | 'https:'],
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          clearTimeout(timer);
          resolve({ status: response.statusCode ?? 0, contentType: response.headers['content-type'] ?? null, body: Buffer.concat(chunks).toString('utf8') });
        });
        response.on('error', fail);
      },
    );
    const timer = setTimeout(() => request.destroy(new SubgraphTimeout(url, timeoutMs)), timeoutMs);
    function fail(error: Error) {
      clearTimeout(timer);
      reject(error);
    }
    request.on('error', fail);
    request.end(body);
  });
}

/** The answer as the `FetcherResponse` RemoteGraphQLDataSource reads (status, content type, text or JSON). */
export function asFetcherResponse(url: string, answer: SubgraphAnswer): FetcherResponse {
  let used = false;
  const take = () => {
    if (used) throw new TypeError('the body was already read');
    used = true;
    return answer.body;
  };
  const response = {
    ok: answer.status >= 200 && answer.status < 300,
    status: answer.status,
    statusText: http.STATUS_CODES[answer.status] ?? '',
    url,
    redirected: false,
    get bodyUsed() {
      return used;
    },
    headers: { get: (name: string) => (name.toLowerCase() === 'content-type' ? answer.contentType : null) },
    text: async () => take(),
    json: async () => JSON.parse(take()) as unknown,
    arrayBuffer: async () => new TextEncoder().encode(take()).buffer,
    clone: () => asFetcherResponse(url, answer),
  };
  return response as unknown as FetcherResponse;
}

/** A `Fetcher` (for RemoteGraphQLDataSource) on `postToSubgraph`. */
export function subgraphFetcher(timeoutMs: number): Fetcher {
  return (async (url: string, init: { headers?: Record<string, string>; body?: string }) =>
    asFetcherResponse(url, await postToSubgraph(url, init.headers ?? {}, init.body ?? '', timeoutMs))) as unknown as Fetcher;
}
