import { addResolversToSchema } from '@graphql-tools/schema';
import {
  BREAK,
  Kind,
  ValuesOfCorrectTypeRule,
  coerceInputValue,
  isNonNullType,
  typeFromAST,
  validate,
  valueFromAST,
  visit,
  type ASTNode,
  type DocumentNode,
  type GraphQLError,
  type GraphQLInputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import { inspect } from 'graphql/jsutils/inspect';
import { printPathArray } from 'graphql/jsutils/printPathArray';
import { DateTime } from '../lib/dateTime';
import { BadUserInput } from '../lib/errors';

/**
 * Input checks the gateway makes before planning: custom scalars parsed as the subgraphs parse
 * them, and every input error turned into BAD_USER_INPUT naming the input field the client wrote
 * (`recordedAt`, not the scalar `DateTime`) and, inside a list argument, the item's `index`.
 */

/**
 * The supergraph's API schema knows `DateTime` only by name, so any value passed through and the
 * subgraph refused it (a 500 at the gateway). This copy parses it with the subgraphs' own scalar.
 */
export function withScalars(apiSchema: GraphQLSchema): GraphQLSchema {
  return addResolversToSchema({ schema: apiSchema, resolvers: { DateTime } });
}

export interface InputLocation {
  field: string;
  index?: number;
}

type Ancestor = ASTNode | ReadonlyArray<ASTNode>;

function isNode(value: Ancestor): value is ASTNode {
  return !Array.isArray(value);
}

/**
 * Walks up from a node: the innermost input field, argument, field or directive names the error;
 * the innermost list value says which item. Lists cannot sit above an argument, so the walk stops there.
 */
function locationOf(chain: readonly Ancestor[]): InputLocation | undefined {
  let field: string | undefined;
  let index: number | undefined;
  for (let i = chain.length - 1; i >= 0; i--) {
    const node = chain[i]!;
    if (!isNode(node)) continue;
    if (node.kind === Kind.LIST && index === undefined) {
      const item = chain[i + 2]; // the list node, its `values` array, then the item
      if (item && isNode(item)) index = node.values.indexOf(item as (typeof node.values)[number]);
    }
    if (field === undefined) {
      if (node.kind === Kind.OBJECT_FIELD || node.kind === Kind.ARGUMENT || node.kind === Kind.FIELD || node.kind === Kind.DIRECTIVE) field = node.name.value;
      else if (node.kind === Kind.VARIABLE_DEFINITION) field = node.variable.name.value;
    }
    if (node.kind === Kind.ARGUMENT || node.kind === Kind.FIELD || node.kind === Kind.DIRECTIVE || node.kind === Kind.VARIABLE_DEFINITION) break;
  }
  if (field === undefined) return undefined;
  return index === undefined || index < 0 ? { field } : { field, index };
}

function locate(root: ASTNode, matches: (node: ASTNode) => boolean, options: { uses?: boolean } = {}): InputLocation | undefined {
  let found: InputLocation | undefined;
  visit(root, {
    enter(node, _key, parent, _path, ancestors) {
      // `$x` in a variable's definition is not where it is used.
      if (options.uses && node.kind === Kind.VARIABLE_DEFINITION) return false;
      if (!matches(node)) return undefined;
      // graphql-js' `ancestors` stop above the parent.
      found = locationOf([...ancestors, ...(parent === undefined ? [] : [parent]), node]);
      return BREAK;
    },
  });
  return found;
}

/** Where a variable is used: in the operation itself, else in a fragment it spreads. */
function locateUse(document: DocumentNode, operation: OperationDefinitionNode, name: string): InputLocation | undefined {
  const isUse = (node: ASTNode) => node.kind === Kind.VARIABLE && node.name.value === name;
  return locate(operation, isUse, { uses: true }) ?? locate(document, isUse, { uses: true });
}

/**
 * Where a graphql-js validation error points. Rules that name several nodes put the use site last
 * (a variable's definition, then where it is used), but some add the whole operation after it.
 */
export function locateError(document: DocumentNode, error: GraphQLError): InputLocation | undefined {
  for (const target of [...(error.nodes ?? [])].reverse()) {
    const found = locate(document, (node) => node === target);
    if (found) return found;
  }
  return undefined;
}

/** A validation error as the client sees it: BAD_USER_INPUT naming the field it points at. */
export function inputError(document: DocumentNode, error: GraphQLError): GraphQLError {
  if (error.extensions.code === 'BAD_USER_INPUT') return error; // already typed (the operation limits)
  const { field, index } = locateError(document, error) ?? { field: 'query' };
  return new BadUserInput(field, error.message, index === undefined ? {} : { index }, { rejectsRequest: true });
}

/**
 * The first literal value (`recordedAt: "yesterday"`) the scalars' real parsing refuses; everything
 * else about the document was validated already.
 */
export function literalError(schema: GraphQLSchema, document: DocumentNode, hideSuggestions: boolean): GraphQLError | undefined {
  const [first] = validate(schema, document, [ValuesOfCorrectTypeRule], { hideSuggestions, maxErrors: 1 });
  return first && inputError(document, first);
}

/**
 * graphql-js's variable coercion (getVariableValues), step for step, but keeping the path inside
 * each value: `$i[3].recordedAt` becomes field `recordedAt`, index 3. Without a path (the variable
 * itself is missing or wrong) the error names where the variable is used, e.g. `inputs`. Stops at
 * the first error: HTTP can report only one from where it runs (OperationGuard.plugin).
 */
export function coerceVariables(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  inputs: Record<string, unknown>,
  hideSuggestions: boolean,
): { variables: Record<string, unknown> } | { error: GraphQLError } {
  const variables: Record<string, unknown> = {};
  let error: GraphQLError | undefined;
  for (const definition of operation.variableDefinitions ?? []) {
    if (error) break;
    const name = definition.variable.name.value;
    // Validation made sure every variable has an input type.
    const type = typeFromAST(schema, definition.type) as GraphQLInputType;
    let use: InputLocation | undefined;
    const fail = (message: string, path: ReadonlyArray<string | number> = []) => {
      use ??= locateUse(document, operation, name) ?? { field: name };
      const at = use;
      const field = [...path].reverse().find((key): key is string => typeof key === 'string') ?? at.field;
      const index = [...path].reverse().find((key): key is number => typeof key === 'number') ?? at.index;
      error ??= new BadUserInput(field, message, index === undefined ? {} : { index }, { rejectsRequest: true });
    };
    if (!Object.prototype.hasOwnProperty.call(inputs, name)) {
      if (definition.defaultValue) variables[name] = valueFromAST(definition.defaultValue, type);
      else if (isNonNullType(type)) fail(`Variable "$${name}" of required type "${inspect(type)}" was not provided.`);
      continue;
    }
    const value = inputs[name];
    if (value === null && isNonNullType(type)) {
      fail(`Variable "$${name}" of non-null type "${inspect(type)}" must not be null.`);
      continue;
    }
    variables[name] = coerceInputValue(
      value,
      type,
      (path, invalid, cause) => {
        const at = path.length > 0 ? ` at "${name}${printPathArray(path)}"` : '';
        fail(`Variable "$${name}" got invalid value ${inspect(invalid)}${at}; ${cause.message}`, path);
      },
      hideSuggestions,
    );
  }
  return error ? { error } : { variables };
}
