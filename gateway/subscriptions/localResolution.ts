import {
  GraphQLError,
  Kind,
  execute,
  getOperationAST,
  type DocumentNode,
  type ExecutionResult,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLFieldResolver,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';
import type { Caller } from '../../lib/caller';
import type { LocationEvent } from '../../lib/locationEvent';

/**
 * Most live selections need nothing a subgraph knows that the gateway does not already hold: the
 * event carries every Location field, and a device's name and tenant never change (the API has no
 * operation that renames either). Such a selection is resolved in the gateway, with graphql-js on
 * the API schema, from the event and the group's cached device: no subgraph round trip per event.
 * Anything else (a device's `lastLocation`, a tenant's `members`, …) goes through the query plan.
 */

/** What each type may select for the gateway to resolve it alone. */
const LOCAL_FIELDS: Record<string, ReadonlySet<string>> = {
  Location: new Set(['__typename', 'id', 'sequence', 'latitude', 'longitude', 'accuracy', 'speed', 'heading', 'altitude', 'recordedAt', 'receivedAt', 'device']),
  Device: new Set(['__typename', 'id', 'name', 'createdAt', 'tenant']),
  Tenant: new Set(['__typename', 'id', 'name', 'createdAt']),
};
const CHILD_TYPE: Record<string, string> = { 'Location.device': 'Device', 'Device.tenant': 'Tenant' };

/** A device as the gateway caches it: the fields that never change, by field name. */
export interface CachedDevice {
  id: string;
  name: string;
  createdAt: string;
  tenant: { id: string; name: string; createdAt: string };
}

/** The query that fills the cache: every immutable field, whatever a selection needs of them. */
export const DEVICE_FIELDS = 'id name createdAt tenant { id name createdAt }';

export interface LocalResolution {
  /** The selection reaches into `device`: events need their device cached first. */
  readonly needsDevice: boolean;
  resolve(event: LocationEvent, device: CachedDevice | undefined, caller: Caller, variables: Record<string, unknown>): ExecutionResult;
}

/** A local resolution for the subscription, or null when its selection needs the query plan. */
export function localResolution(apiSchema: GraphQLSchema, document: DocumentNode, operationName: string | undefined): LocalResolution | null {
  const operation = getOperationAST(document, operationName);
  if (!operation) return null;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  const root = rootFields(operation.selectionSet, fragments);
  if (root.length !== 1 || !root[0]?.selectionSet) return null;
  let needsDevice = false;
  const allowed = (selectionSet: SelectionSetNode, type: string, seen: Set<string>): boolean =>
    selectionSet.selections.every((selection) => {
      if (selection.kind === Kind.INLINE_FRAGMENT) return (!selection.typeCondition || selection.typeCondition.name.value === type) && allowed(selection.selectionSet, type, seen);
      if (selection.kind === Kind.FRAGMENT_SPREAD) {
        const fragment = fragments.get(selection.name.value);
        if (!fragment || fragment.typeCondition.name.value !== type || seen.has(fragment.name.value)) return false;
        return allowed(fragment.selectionSet, type, new Set([...seen, fragment.name.value]));
      }
      const name = selection.name.value;
      if (!LOCAL_FIELDS[type]?.has(name)) return false;
      if (name === 'device') needsDevice = true;
      const child = CHILD_TYPE[`${type}.${name}`];
      return child ? !!selection.selectionSet && allowed(selection.selectionSet, child, seen) : !selection.selectionSet;
    });
  if (!allowed(root[0].selectionSet, 'Location', new Set())) return null;

  return {
    needsDevice,
    resolve(event, device, _caller, variables) {
      const fieldResolver: GraphQLFieldResolver<unknown, unknown> = (source, _args, _context, info) => {
        if (info.parentType.name === 'Subscription') return event;
        if (info.parentType.name === 'Location') {
          if (info.fieldName === 'sequence') return event.seq;
          if (info.fieldName === 'device') return device;
        }
        return (source as Record<string, unknown>)[info.fieldName];
      };
      const result = execute({ schema: apiSchema, document, operationName, variableValues: variables, fieldResolver }) as ExecutionResult;
      return result;
    },
  };
}

function rootFields(selectionSet: SelectionSetNode, fragments: Map<string, FragmentDefinitionNode>): FieldNode[] {
  return selectionSet.selections.flatMap((selection) => {
    if (selection.kind === Kind.FIELD) return [selection];
    const nested = selection.kind === Kind.INLINE_FRAGMENT ? selection.selectionSet : fragments.get(selection.name.value)?.selectionSet;
    return nested ? rootFields(nested, fragments) : [];
  });
}

/** A device that is not (or no longer) the group's tenant's: as the location subgraph would answer. */
export function deviceNotFound(responseKey: string): ExecutionResult {
  return { data: null, errors: [new GraphQLError('Device not found', { path: [responseKey, 'device'], extensions: { code: 'NOT_FOUND' } })] };
}
