import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives';
import { GraphQLError, Lexer, Source, TokenKind, getNamedType, isListType, isNonNullType, type DocumentNode, type GraphQLOutputType, type GraphQLSchema, type ValidationContext, type ValidationRule } from 'graphql';
import { getComplexity, type ComplexityEstimator } from 'graphql-query-complexity';
import { BadUserInput } from '../lib/errors';

/**
 * How big an operation the gateway accepts, on HTTP and on graphql-ws alike (both go through
 * OperationGuard). Every limit is a gateway setting (README, "Operation limits"); the defaults
 * leave room for the richest real operations: a tenant's devices with their lastLocation plus a
 * page of 1000 locations, and `recordLocations` with 1000 inputs, even written inline.
 */
export interface OperationLimits {
  /** Nesting of selections (`{ me { id } }` is 2). */
  maxDepth: number;
  /** Aliased fields per operation (fragments counted where they are spread). */
  maxAliases: number;
  /** Directives per operation. */
  maxDirectives: number;
  /** Lexical tokens in the document: bounds the parser's work before anything else runs. */
  maxTokens: number;
  /** Estimated cost (see operationCost): each field costs 1 plus its selection, times its list size. */
  maxCost: number;
  /** List size the cost assumes for lists the client cannot bound (`devices`, `tenants`, `members`). */
  assumedListSize: number;
  /** Largest graphql-ws message, in bytes; a larger frame closes the socket with 1009. */
  maxSocketMessageBytes: number;
}

export const DEFAULT_OPERATION_LIMITS: OperationLimits = {
  maxDepth: 12,
  maxAliases: 50,
  maxDirectives: 50,
  // 1000 inline LocationInputs with all 8 fields are ~26,000 tokens.
  maxTokens: 50_000,
  // The richest real query costs ~22,000; `locations(first: 1000)` under `devices` ~400,000.
  maxCost: 100_000,
  assumedListSize: 100,
  // A subscribe message carrying recordLocations with 1000 full inputs is ~300 KB.
  maxSocketMessageBytes: 1024 * 1024,
};

export type LimitName = 'depth' | 'aliases' | 'directives' | 'tokens' | 'cost';

export function limitExceeded(limit: LimitName, max: number, message: string): BadUserInput {
  return new BadUserInput('query', message, { limit, max }, { rejectsRequest: true });
}

/**
 * graphql-armor's depth, alias and directive rules, reporting the contract's typed error instead of
 * throwing out of `validate` (their default) so validation goes on and the caller gets every error.
 */
export function limitRules(limits: OperationLimits): ValidationRule[] {
  const rejectAs = (limit: LimitName, max: number) => ({
    n: max,
    exposeLimits: true,
    propagateOnRejection: false,
    onReject: [
      (context: ValidationContext | null, error: GraphQLError) =>
        // armor words every rejection as a "Syntax Error"; the limit's own sentence is what the client needs.
        context?.reportError(limitExceeded(limit, max, error.message.replace(/^Syntax Error: /, ''))),
    ],
  });
  return [
    maxDepthRule(rejectAs('depth', limits.maxDepth)),
    maxAliasesRule(rejectAs('aliases', limits.maxAliases)),
    maxDirectivesRule(rejectAs('directives', limits.maxDirectives)),
  ];
}

/**
 * graphql-js enforces the token limit itself while parsing (`parse(source, { maxTokens })`), but
 * reports it as an ordinary syntax error; this tells the two apart by counting, stopping one token
 * past the limit, so a refused document costs no more to recount than to parse.
 */
export function exceedsTokenLimit(source: string, limits: OperationLimits): boolean {
  const lexer = new Lexer(new Source(source));
  try {
    for (let count = 0; count <= limits.maxTokens; count++) {
      if (lexer.advance().kind === TokenKind.EOF) return false;
    }
    return true;
  } catch {
    return false; // a syntax error before the limit: not the limit's doing
  }
}

export function tokenLimitError(limits: OperationLimits): BadUserInput {
  return limitExceeded('tokens', limits.maxTokens, `Token limit of ${limits.maxTokens} exceeded.`);
}

function isListOutput(type: GraphQLOutputType): boolean {
  return isListType(isNonNullType(type) ? type.ofType : type);
}

/**
 * The list size each field multiplies its selection by. Lists the client bounds are counted as
 * asked: `Device.locations` by `first` (its edges are that page, so `edges` counts once), and
 * `recordLocations` by the number of inputs. Every other list is assumed `assumedListSize` long.
 */
function listSize(limits: OperationLimits): ComplexityEstimator {
  const pageSize = (first: unknown) => (typeof first === 'number' ? Math.max(1, first) : limits.assumedListSize);
  return ({ type, field, args, childComplexity }) => {
    const cost = 1 + childComplexity;
    switch (`${type.name}.${field.name}`) {
      case 'Device.locations':
        return pageSize(args.first) * cost;
      case 'LocationConnection.edges':
        return cost;
      case 'Mutation.recordLocations':
        return (Array.isArray(args.inputs) ? Math.max(1, args.inputs.length) : 1) * cost;
      default:
        return (isListOutput(field.type) && !getNamedType(field.type).name.startsWith('__') ? limits.assumedListSize : 1) * cost;
    }
  };
}

/** graphql-query-complexity's guard against fragment bombs: too many nodes once fragments are expanded. */
const TOO_MANY_NODES = 'Query exceeds the maximum allowed number of nodes.';

/**
 * graphql-query-complexity walks the operation (fragments, @include/@skip, variables) with the
 * estimator above; it runs only on a valid operation with valid variables. Its node guard tripping
 * is a cost overrun as well.
 */
export function costError(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | undefined,
  variables: Record<string, unknown>,
  limits: OperationLimits,
): BadUserInput | undefined {
  let cost: number;
  try {
    cost = getComplexity({ schema, query: document, operationName, variables, estimators: [listSize(limits)] });
  } catch (error) {
    if (error instanceof GraphQLError && error.message === TOO_MANY_NODES) return limitExceeded('cost', limits.maxCost, `Query cost limit of ${limits.maxCost} exceeded.`);
    throw error;
  }
  if (cost <= limits.maxCost) return undefined;
  return limitExceeded('cost', limits.maxCost, `Query cost limit of ${limits.maxCost} exceeded, found ${cost}.`);
}
