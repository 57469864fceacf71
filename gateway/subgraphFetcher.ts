import type { GraphQLDataSource, GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import type { GatewayGraphQLResponse } from '@apollo/server-gateway-interface';
import type { Fetcher, FetcherResponse } from '@apollo/utils.fetcher';
import { CALLER_HEADER, signCaller, type Caller } from '../lib/caller';
import { asFetcherResponse, postToSubgraph, type SubgraphAnswer } from './subgraphHttp';
import type { LocationEvent } from '../lib/locationEvent';
import { EVENTS_FIELD } from './subscriptions/eventPlan';

/** What the gateway knows about one request (HTTP) or one batch of subscription events (WebSocket). */
export interface GatewayContext {
  caller: Caller | null;
  /** Set while resolving `locationUpdated` events: the location subgraph resolves the selection against them. */
  locationEvents?: readonly LocationEvent[];
}

/**
 * Marks a fetch that may share its answer with identical fetches in flight, and says for whom.
 * Set by the data source, read and removed by the fetcher: it never leaves the gateway.
 */
const SHARE_AS = 'x-fleet-share-as';

/** Who a fetch runs as, for sharing: two fetches may share an answer only if this is equal. */
export function sharingIdentity(caller: Caller | null): string {
  return caller ? `${caller.userId} ${caller.role} ${caller.tenantId ?? '-'}` : 'anonymous';
}

export interface SharedFetchStats {
  /** Fetches answered by an identical one already in flight for the same caller. */
  shared: number;
}

/**
 * Identical subgraph fetches in flight at the same moment, for the same caller, are sent once and
 * the answer is read by each of them (a dashboard's 16 tabs polling the same query cost one fetch
 * per subgraph, not 16). The key is the subgraph, the exact body (query and variables) and the
 * caller's identity (user, role, tenant) — never the signed header alone, whose expiry differs —
 * so two callers' fetches can never be merged. Mutations and event batches are never shared.
 */
export function sharingFetch(timeoutMs: number, stats: SharedFetchStats): Fetcher {
  const inFlight = new Map<string, Promise<SubgraphAnswer>>();
  // RemoteGraphQLDataSource hands plain objects: headers as a record of lower-cased names.
  return (async (url: string, init: { headers: Record<string, string>; body?: string }) => {
    const identity = init.headers[SHARE_AS] ?? null;
    delete init.headers[SHARE_AS];
    const body = init.body ?? '';
    if (identity === null) return asFetcherResponse(url, await postToSubgraph(url, init.headers, body, timeoutMs));
    const key = `${url}\u0000${identity}\u0000${body}`;
    let answer = inFlight.get(key);
    if (answer) stats.shared += 1;
    else {
      answer = postToSubgraph(url, init.headers, body, timeoutMs).finally(() => inFlight.delete(key));
      inFlight.set(key, answer);
    }
    // Each reader parses its own copy: the gateway mutates what it merges.
    return asFetcherResponse(url, await answer);
  }) as unknown as Fetcher;
}

/**
 * A caller's signed header is valid for a minute (lib/caller.ts); it is reused for half of that, so
 * a query's several fetches (and a user's next queries) do not each pay for JSON, base64 and an HMAC.
 */
const SIGNED_REUSE_MS = 30_000;
const SIGNED_CACHE_SIZE = 10_000;
const signedCallers = new Map<string, { header: string; until: number }>();

export function signedCaller(caller: Caller | null, secret: string, now = Date.now()): string {
  const key = caller ? `${sharingIdentity(caller)} ${caller.email}` : 'anonymous';
  const cached = signedCallers.get(key);
  if (cached && cached.until > now) return cached.header;
  const header = signCaller(caller, secret, now);
  if (signedCallers.size >= SIGNED_CACHE_SIZE) signedCallers.delete(signedCallers.keys().next().value as string);
  signedCallers.set(key, { header, until: now + SIGNED_REUSE_MS });
  return header;
}

/**
 * Every fetch from the gateway to a subgraph: carries the signed caller and nothing the client
 * sent (no client headers are forwarded, so none can be forged through the gateway), and gives up
 * after `timeoutMs`, so a hung subgraph costs a request an error instead of holding it (and the
 * gateway's memory) forever.
 *
 * A `GraphQLDataSource` of its own rather than @apollo/gateway's RemoteGraphQLDataSource, which
 * builds node-fetch Request and Headers objects for every fetch only to hand them to hooks this
 * gateway does not use (a few percent of its CPU under load).
 */
export class SubgraphFetcher implements GraphQLDataSource<GatewayContext> {
  private readonly fetch: Fetcher;

  constructor(
    private readonly url: string,
    private readonly callerSigningSecret: string,
    timeoutMs: number,
    stats: SharedFetchStats = { shared: 0 },
  ) {
    this.fetch = sharingFetch(timeoutMs, stats);
  }

  async process({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<GatewayGraphQLResponse> {
    const query = request.query ?? '';
    // Signed even for anonymous clients: subgraphs then know the request came through the gateway.
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      [CALLER_HEADER]: signedCaller(context?.caller ?? null, this.callerSigningSecret),
    };
    let extensions = request.extensions;
    if (context?.locationEvents && query.includes(EVENTS_FIELD)) {
      // Only the fetch that resolves the events needs them (entity fetches carry representations).
      extensions = { ...extensions, locationEvents: context.locationEvents };
    } else if (!/^\s*mutation\b/.test(query)) {
      headers[SHARE_AS] = sharingIdentity(context?.caller ?? null);
    }
    const body = JSON.stringify({ query, variables: request.variables, operationName: request.operationName, extensions });
    const response = await (this.fetch as unknown as (url: string, init: { headers: Record<string, string>; body: string }) => Promise<FetcherResponse>)(this.url, { headers, body });
    const text = await response.text();
    let parsed: GatewayGraphQLResponse | undefined;
    try {
      parsed = JSON.parse(text) as GatewayGraphQLResponse;
    } catch {
      parsed = undefined;
    }
    // A request error (4xx) still answers GraphQL errors: the gateway reports them at the fetch's path.
    if (parsed && (response.ok || parsed.errors?.length)) return parsed;
    throw new Error(`${this.url} answered ${response.status} ${response.statusText}`);
  }
}
