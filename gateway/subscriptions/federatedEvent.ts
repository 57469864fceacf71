import { buildOperationContext, executeQueryPlan, type ServiceMap } from '@apollo/gateway';
import type { GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import { operationFromDocument, type Supergraph } from '@apollo/federation-internals';
import { QueryPlanner, type PlanNode, type QueryPlan } from '@apollo/query-planner';
import type { DocumentNode, ExecutionResult, GraphQLSchema, OperationDefinitionNode } from 'graphql';
import type { Caller } from '../../lib/caller';
import type { LocationEvent } from '../../lib/locationEvent';
import type { Logger } from '../../lib/logger';
import type { GatewayContext } from '../subgraphFetcher';

/**
 * Resolves a subscription's selection for one event through the federation query plan.
 *
 * The planner splits a subscription into `primary` (the location subgraph's `locationUpdated`
 * selection) and `rest` (entity fetches into other subgraphs, e.g. `device { tenant { name } }`).
 * @apollo/gateway refuses to execute a SubscriptionNode, but it executes a plain plan: per event we
 * run `Sequence[primary, rest]`, with the primary fetch carrying the event so the location subgraph
 * resolves the selection against it instead of waiting on a stream.
 */
export interface SubscriptionPlanner {
  plan(document: DocumentNode, operationName: string | undefined): PlannedSubscription;
}

export interface PlannedSubscription {
  execute(event: LocationEvent, caller: Caller, variables: Record<string, unknown>): Promise<ExecutionResult>;
}

export function createSubscriptionPlanner(options: {
  supergraph: Supergraph;
  apiSchema: GraphQLSchema;
  serviceMap: ServiceMap;
  logger: Logger;
}): SubscriptionPlanner {
  const planner = new QueryPlanner(options.supergraph);
  const supergraphSchema = options.supergraph.schema.toGraphQLJSSchema();
  const apiSchema = options.supergraph.apiSchema();
  return {
    plan(document, operationName) {
      const operation = operationFromDocument(options.supergraph.schema, document, { operationName });
      const subscriptionPlan = planner.buildQueryPlan(operation);
      const node = subscriptionPlan.node;
      if (node?.kind !== 'Subscription') throw new Error('expected a subscription plan');
      const nodes: PlanNode[] = node.rest ? [node.primary, node.rest] : [node.primary];
      const queryPlan: QueryPlan = { kind: 'QueryPlan', node: { kind: 'Sequence', nodes } };
      const operationContext = buildOperationContext({ schema: options.apiSchema, operationDocument: document, operationName });
      return {
        execute: (event, caller, variables) => {
          const context: GatewayContext = { caller, locationEvent: event };
          const requestContext = {
            request: { variables, operationName },
            context,
            metrics: {},
            logger: options.logger,
            operation: operationContext.operation as OperationDefinitionNode,
            document,
          } as unknown as GatewayGraphQLRequestContext<GatewayContext>;
          return executeQueryPlan(queryPlan, options.serviceMap, requestContext, operationContext, supergraphSchema, apiSchema);
        },
      };
    },
  };
}
