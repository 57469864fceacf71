import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import type { Fetcher } from '@apollo/utils.fetcher';
import { CALLER_HEADER, signCaller, type Caller } from '../lib/caller';
import type { LocationEvent } from '../lib/locationEvent';
import { EVENTS_FIELD } from './subscriptions/eventPlan';

/** What the gateway knows about one request (HTTP) or one batch of subscription events (WebSocket). */
export interface GatewayContext {
  caller: Caller | null;
  /** Set while resolving `locationUpdated` events: the location subgraph resolves the selection against them. */
  locationEvents?: readonly LocationEvent[];
}

/**
 * Every fetch from the gateway to a subgraph: carries the signed caller and nothing the client
 * sent (no client headers are forwarded, so none can be forged through the gateway), and gives up
 * after `timeoutMs`, so a hung subgraph costs a request an error instead of holding it (and the
 * gateway's memory) forever.
 */
export class SubgraphFetcher extends RemoteGraphQLDataSource<GatewayContext> {
  constructor(
    url: string,
    private readonly callerSigningSecret: string,
    timeoutMs: number,
  ) {
    // Node's own fetch: the default (make-fetch-happen) builds a stack trace per request to tell
    // http from https, which showed up in the benchmarks' CPU profiles.
    const fetcher = ((input: string, init: RequestInit) => fetch(input, { ...init, signal: AbortSignal.timeout(timeoutMs) })) as unknown as Fetcher;
    super({ url, fetcher });
  }

  override willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): void {
    // Signed even for anonymous clients: subgraphs then know the request came through the gateway.
    request.http?.headers.set(CALLER_HEADER, signCaller(context?.caller ?? null, this.callerSigningSecret));
    // Only the fetch that resolves the events needs them (entity fetches carry representations).
    if (context?.locationEvents && request.query?.includes(EVENTS_FIELD)) {
      request.extensions = { ...request.extensions, locationEvents: context.locationEvents };
    }
  }
}
