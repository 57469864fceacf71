import type { ServiceMap } from '@apollo/gateway';
import { Supergraph } from '@apollo/federation-internals';
import type { GraphQLSchema } from 'graphql';
import type { Logger } from '../lib/logger';
import { SubgraphFetcher } from './subgraphFetcher';
import { createEventPlanner, type EventPlanner } from './subscriptions/eventPlan';

/**
 * Everything the gateway derives from one supergraph SDL, built together so a reload swaps all of
 * it at once: the API schema clients are validated against, a fetcher per subgraph, the planner of
 * subscription events, and where the location history lives.
 */
export interface SupergraphRuntime {
  sdl: string;
  apiSchema: GraphQLSchema;
  serviceMap: ServiceMap;
  planner: EventPlanner;
  locationUrl: string;
}

export function buildSupergraphRuntime(
  sdl: string,
  options: { callerSigningSecret: string; subgraphTimeoutMs: number; logger: Logger },
): SupergraphRuntime {
  const supergraph = Supergraph.build(sdl);
  const serviceMap: ServiceMap = {};
  for (const subgraph of supergraph.subgraphs()) {
    serviceMap[subgraph.name] = new SubgraphFetcher(subgraph.url, options.callerSigningSecret, options.subgraphTimeoutMs);
  }
  const locationUrl = supergraph.subgraphs().get('location')?.url;
  if (!locationUrl) throw new Error('the supergraph has no location subgraph');
  const apiSchema = supergraph.apiSchema().toGraphQLJSSchema();
  if (!apiSchema.getSubscriptionType()?.getFields().locationUpdated) throw new Error('the supergraph has no Subscription.locationUpdated');
  return {
    sdl,
    apiSchema,
    serviceMap,
    planner: createEventPlanner({ supergraph, apiSchema, serviceMap, logger: options.logger }),
    locationUrl,
  };
}
