import { buildOperationContext, executeQueryPlan, type ServiceMap } from '@apollo/gateway';
import type { GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import { operationFromDocument, type Supergraph } from '@apollo/federation-internals';
import { QueryPlanner, type QueryPlan } from '@apollo/query-planner';
import {
  GraphQLError,
  Kind,
  getOperationAST,
  print,
  visit,
  type DocumentNode,
  type ExecutionResult,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionNode,
} from 'graphql';
import type { Caller } from '../../lib/caller';
import { BadUserInput } from '../../lib/errors';
import type { LocationEvent } from '../../lib/locationEvent';
import type { Logger } from '../../lib/logger';
import type { GatewayContext } from '../subgraphFetcher';
import { localResolution, type LocalResolution } from './localResolution';

/**
 * Resolves a `locationUpdated` selection for a batch of events in ONE query-plan execution.
 *
 * @apollo/gateway plans subscriptions but refuses to execute them. The subscription's root field is
 * rewritten into the location subgraph's internal `_locationEvents(tenantId, deviceId): [Location]!`
 * (`@inaccessible`: in the supergraph, not in the API), which resolves the events the gateway sends
 * in `extensions.locationEvents`; the query planner then plans the rest of the selection (entity
 * fetches such as `device { tenant { name } }`) once for the whole list, so N events cost one fetch
 * per subgraph instead of N. The list's item i is split back into event i's `locationUpdated` result.
 */
export interface EventPlan {
  /** The subscription's response key (its alias, or `locationUpdated`). */
  readonly responseKey: string;
  /**
   * What decides the events and their shape: the printed batch query. Two subscriptions with the
   * same signature and the same values for `variableNames` see the same results (resume
   * positions are not part of it).
   */
  readonly signature: string;
  readonly variableNames: ReadonlySet<string>;
  /** Set when the gateway can resolve the selection alone (see localResolution.ts). */
  readonly local: LocalResolution | null;
  /** One outcome per event, in the same order. Never throws: failures become outcomes. */
  resolve(events: readonly LocationEvent[], caller: Caller, variables: Record<string, unknown>): Promise<EventOutcome[]>;
}

export interface EventOutcome {
  result: ExecutionResult;
  /**
   * The result carries an error that may go away on retry (a subgraph down, timed out or failing),
   * as opposed to one that is the answer (the location is not visible to this caller).
   */
  transient: boolean;
}

export interface EventPlanner {
  plan(document: DocumentNode, operationName: string | undefined): EventPlan;
}

/** Codes a subgraph answers on purpose: retrying cannot change them. */
const PERMANENT_CODES = new Set(['BAD_USER_INPUT', 'NOT_FOUND', 'FORBIDDEN', 'UNAUTHENTICATED', 'RATE_LIMITED']);

export const EVENTS_FIELD = '_locationEvents';
/** Arguments of `locationUpdated` that choose the events; the others (e.g. resume positions) are the gateway's. */
const EVENT_ARGUMENTS = new Set(['tenantId', 'deviceId']);

export function createEventPlanner(options: { supergraph: Supergraph; apiSchema: GraphQLSchema; serviceMap: ServiceMap; logger: Logger }): EventPlanner {
  const planner = new QueryPlanner(options.supergraph);
  const supergraphSchema = options.supergraph.schema.toGraphQLJSSchema();
  return {
    plan(document, operationName) {
      const batch = toBatchQuery(document, operationName);
      const operation = operationFromDocument(options.supergraph.schema, batch.document, { operationName });
      const queryPlan: QueryPlan = planner.buildQueryPlan(operation);
      return new PlannedEvents(batch, queryPlan, supergraphSchema, localResolution(options.apiSchema, document, operationName), options);
    },
  };
}

class PlannedEvents implements EventPlan {
  readonly responseKey: string;
  readonly signature: string;
  readonly variableNames: ReadonlySet<string>;
  private readonly operationContext;

  constructor(
    private readonly batch: BatchQuery,
    private readonly queryPlan: QueryPlan,
    private readonly supergraphSchema: GraphQLSchema,
    readonly local: LocalResolution | null,
    private readonly options: { supergraph: Supergraph; serviceMap: ServiceMap; logger: Logger },
  ) {
    this.responseKey = batch.responseKey;
    this.signature = print(batch.document);
    this.variableNames = new Set(batch.variableNames);
    // Shaped against the whole supergraph: the API schema does not know `_locationEvents`.
    this.operationContext = buildOperationContext({ schema: supergraphSchema, operationDocument: batch.document, operationName: batch.operationName });
  }

  async resolve(events: readonly LocationEvent[], caller: Caller, variables: Record<string, unknown>): Promise<EventOutcome[]> {
    if (events.length === 0) return [];
    const context: GatewayContext = { caller, locationEvents: events };
    const requestContext = {
      request: { variables, operationName: this.batch.operationName },
      context,
      metrics: {},
      logger: this.options.logger,
      operation: this.operationContext.operation as OperationDefinitionNode,
      document: this.batch.document,
    } as unknown as GatewayGraphQLRequestContext<GatewayContext>;
    let result: ExecutionResult;
    try {
      result = await executeQueryPlan(
        this.queryPlan,
        this.options.serviceMap,
        requestContext,
        this.operationContext,
        this.supergraphSchema,
        this.options.supergraph.schema,
      );
    } catch (error) {
      this.options.logger.error({ err: error }, 'executing a location event plan failed');
      result = { data: null, errors: [new GraphQLError('event resolution failed', { originalError: error as Error })] };
    }
    return splitByEvent(result, events.length, this.responseKey);
  }
}

/** Item i of the batch answer as event i's own result, with error paths rewritten to match. */
export function splitByEvent(result: ExecutionResult, count: number, responseKey: string): EventOutcome[] {
  const items = (result.data as Record<string, unknown> | null | undefined)?.[responseKey];
  const list = Array.isArray(items) ? items : [];
  const outcomes: EventOutcome[] = Array.from({ length: count }, (_, i) => ({
    result: { data: list[i] == null ? null : { [responseKey]: list[i] } },
    transient: false,
  }));
  const attach = (index: number, error: GraphQLError, path: ReadonlyArray<string | number> | undefined) => {
    const outcome = outcomes[index] as EventOutcome;
    const moved = new GraphQLError(error.message, { path, extensions: error.extensions, originalError: error.originalError ?? undefined });
    outcome.result = { ...outcome.result, errors: [...(outcome.result.errors ?? []), moved] };
    if (!PERMANENT_CODES.has(String(error.extensions?.code))) outcome.transient = true;
  };
  for (const error of result.errors ?? []) {
    const path = error.path;
    const index = path?.[0] === responseKey ? path[1] : undefined;
    if (typeof index === 'number' && index < count) attach(index, error, [responseKey, ...(path as Array<string | number>).slice(2)]);
    // No item to blame (the whole fetch failed): every event shares the error.
    else for (let i = 0; i < count; i++) attach(i, error, path ? [responseKey] : undefined);
  }
  // A missing item without any error would be a silent loss: treat it as a failure worth retrying.
  outcomes.forEach((outcome, i) => {
    if (list[i] == null && !outcome.result.errors?.length) {
      attach(i, new GraphQLError('the location could not be resolved', { extensions: { code: 'INTERNAL_SERVER_ERROR' } }), [responseKey]);
    }
  });
  return outcomes;
}

interface BatchQuery {
  document: DocumentNode;
  operationName: string | undefined;
  responseKey: string;
  /** The variables the batch query still uses. */
  variableNames: string[];
}

/**
 * `subscription S($t: ID!) { feed: locationUpdated(tenantId: $t, after: …) { …selection } }` becomes
 * `query S($t: ID!) { feed: _locationEvents(tenantId: $t) { …selection } }`: same selection, same
 * fragments, only the arguments that choose events, and only the variables still used.
 */
export function toBatchQuery(document: DocumentNode, operationName: string | undefined): BatchQuery {
  const operation = getOperationAST(document, operationName);
  if (!operation || operation.operation !== 'subscription') throw new BadUserInput('query', 'expected a subscription operation');
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  const root = rootField(operation.selectionSet.selections, fragments);
  if (root.directives?.length) throw new BadUserInput('query', 'locationUpdated takes no directives');
  const field: FieldNode = {
    ...root,
    alias: { kind: Kind.NAME, value: root.alias?.value ?? root.name.value },
    name: { kind: Kind.NAME, value: EVENTS_FIELD },
    arguments: root.arguments?.filter((argument) => EVENT_ARGUMENTS.has(argument.name.value)),
  };
  const selectionSet = { kind: Kind.SELECTION_SET, selections: [field] } as const;
  // Variable definitions are left out of the walk: they would count every variable as used.
  const used = usedNames({ kind: Kind.DOCUMENT, definitions: [{ ...operation, variableDefinitions: [], selectionSet }] }, fragments);
  const batchOperation: OperationDefinitionNode = {
    ...operation,
    operation: 'query' as OperationDefinitionNode['operation'],
    selectionSet,
    variableDefinitions: operation.variableDefinitions?.filter((v) => used.variables.has(v.variable.name.value)),
  };
  return {
    document: { kind: Kind.DOCUMENT, definitions: [batchOperation, ...[...fragments.values()].filter((f) => used.fragments.has(f.name.value))] },
    operationName: operation.name?.value,
    responseKey: field.alias?.value as string,
    variableNames: [...used.variables],
  };
}

/** The single root field of a validated subscription, looking through root-level fragments. */
function rootField(selections: readonly SelectionNode[], fragments: Map<string, FragmentDefinitionNode>): FieldNode {
  for (const selection of selections) {
    if (selection.kind === Kind.FIELD) return selection;
    const nested = selection.kind === Kind.INLINE_FRAGMENT ? selection.selectionSet : fragments.get(selection.name.value)?.selectionSet;
    if (nested) return rootField(nested.selections, fragments);
  }
  throw new BadUserInput('query', 'a subscription selects locationUpdated');
}

/** Variables and fragments a document uses, following fragment spreads transitively. */
function usedNames(document: DocumentNode, fragments: Map<string, FragmentDefinitionNode>) {
  const variables = new Set<string>();
  const used = new Set<string>();
  const pending: DocumentNode[] = [document];
  while (pending.length) {
    visit(pending.pop() as DocumentNode, {
      Variable: (node) => void variables.add(node.name.value),
      FragmentSpread: (node) => {
        const fragment = fragments.get(node.name.value);
        if (fragment && !used.has(node.name.value)) {
          used.add(node.name.value);
          pending.push({ kind: Kind.DOCUMENT, definitions: [fragment] });
        }
      },
    });
  }
  return { variables, fragments: used };
}
