import type { ApolloServerPlugin } from '@apollo/server';
import {
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  getOperationAST,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type ParseOptions,
  type ValidationRule,
} from 'graphql';
import { BadUserInput, formatFleetError } from '../lib/errors';
import { coerceVariables, inputError, literalError, locateError, withScalars } from './operationInput';
import { costError, exceedsTokenLimit, limitRules, tokenLimitError, type OperationLimits } from './operationLimits';

export interface OperationGuardOptions {
  /** The supergraph's API schema (what clients see). */
  apiSchema: GraphQLSchema;
  limits: OperationLimits;
  /** Off: `__schema`/`__type` are refused and error messages suggest no names ("Did you mean …"). */
  introspection: boolean;
}

export interface SubscribePayload {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
}

export interface CheckedOperation {
  document: DocumentNode;
  operation: OperationDefinitionNode;
  operationName: string | undefined;
  /** Coerced against the API schema: DateTime values are `Date`s. */
  variables: Record<string, unknown>;
}

/**
 * Everything the gateway checks before an operation runs, defined once for both transports:
 * ApolloServer (HTTP, and queries/mutations sent over the socket) takes `apolloOptions` and
 * `plugin`; graphql-ws's onSubscribe calls `check`. The steps are the same on both: parse with the
 * token limit; validate (graphql-js rules + depth, aliases, directives; every error reported);
 * then DateTime literals, variables and cost (the first error reported, as Apollo's hook after
 * validation can send only one). Every refusal is BAD_USER_INPUT with the field it points at.
 */
export class OperationGuard {
  /** What Apollo validates against: the API schema, its DateTime opaque. */
  private apiSchema: GraphQLSchema;
  /** The API schema with custom scalars parsed as the subgraphs parse them. */
  private schema: GraphQLSchema;
  /**
   * graphql-ws operations by text, parsed and validated once: after a gateway restart every
   * dashboard sends the same few subscriptions at once (Apollo keeps such a cache for HTTP).
   */
  private prepared = new Map<string, { document: DocumentNode } | { errors: GraphQLError[] }>();
  private readonly limits: OperationLimits;
  private readonly hideSuggestions: boolean;
  private readonly parseOptions: ParseOptions;
  private readonly validationRules: ValidationRule[];
  /**
   * Apollo hands every request with the same query text the same cached DocumentNode, so what
   * depends on the document alone is checked once: its literals, and the cost of an operation
   * without variables (the dashboards' polling queries).
   */
  private readonly literalsChecked = new WeakMap<DocumentNode, GraphQLError | null>();
  private readonly costChecked = new WeakMap<OperationDefinitionNode, GraphQLError | null>();

  constructor(options: OperationGuardOptions) {
    this.apiSchema = options.apiSchema;
    this.schema = withScalars(options.apiSchema);
    this.limits = options.limits;
    // Suggestions would spell out the schema that disabled introspection hides.
    this.hideSuggestions = !options.introspection;
    this.parseOptions = { maxTokens: options.limits.maxTokens };
    this.validationRules = [...(options.introspection ? [] : [NoSchemaIntrospectionCustomRule]), ...limitRules(options.limits)];
  }

  /**
   * For the ApolloServer constructor. Introspection is left on there because the guard's own rule
   * refuses it, with graphql-js's message instead of Apollo's (which names its configuration).
   */
  get apolloOptions() {
    return {
      introspection: true,
      parseOptions: this.parseOptions,
      validationRules: this.validationRules,
      validationOptions: { hideSuggestions: this.hideSuggestions },
    };
  }

  /** The checks Apollo's pipeline does not make, and the field each of its own input errors names. */
  get plugin(): ApolloServerPlugin {
    return {
      requestDidStart: async () => ({
        didResolveOperation: async ({ request, document, operation }) => {
          // Without an operation nothing runs: Apollo answers that operationName matched none.
          if (!operation) return;
          const checked = this.checkRunnable(document, operation, request.variables ?? {});
          if ('error' in checked) throw checked.error;
        },
        didEncounterErrors: async ({ errors, document, source }) => {
          for (const error of errors) {
            const code = error.extensions.code;
            if (code === 'GRAPHQL_PARSE_FAILED' && source !== undefined) this.describeParseError(error, source);
            if (code === 'GRAPHQL_VALIDATION_FAILED' && document && error.extensions.field === undefined) {
              Object.assign(error.extensions, locateError(document, error));
            }
          }
        },
      }),
    };
  }

  /** The supergraph was reloaded: validate against its API from now on. */
  useSchema(apiSchema: GraphQLSchema): void {
    this.apiSchema = apiSchema;
    this.schema = withScalars(apiSchema);
    this.prepared = new Map();
  }

  /** graphql-ws: one subscribe message, checked as HTTP checks a request; errors are ready to send. */
  check(payload: SubscribePayload): CheckedOperation | GraphQLError[] {
    let prepared = this.prepared.get(payload.query);
    if (!prepared) {
      prepared = this.prepare(payload.query);
      if (this.prepared.size >= PREPARED_CACHE_SIZE) this.prepared.delete(this.prepared.keys().next().value as string);
      this.prepared.set(payload.query, prepared);
    }
    if ('errors' in prepared) return prepared.errors;
    const { document } = prepared;
    const operationName = payload.operationName ?? undefined;
    const operation = getOperationAST(document, operationName);
    if (!operation) return forClient([new BadUserInput('operationName', 'operationName does not name an operation of the document', {}, { rejectsRequest: true })]);
    const checked = this.checkRunnable(document, operation, payload.variables ?? {});
    if ('error' in checked) return forClient([checked.error]);
    return { document, operation, operationName, variables: checked.variables };
  }

  private prepare(query: string): { document: DocumentNode } | { errors: GraphQLError[] } {
    let document: DocumentNode;
    try {
      document = parse(query, this.parseOptions);
    } catch (error) {
      const refused = exceedsTokenLimit(query, this.limits) ? tokenLimitError(this.limits) : new BadUserInput('query', (error as Error).message, {}, { rejectsRequest: true });
      return { errors: forClient([refused]) };
    }
    const invalid = validate(this.apiSchema, document, [...specifiedRules, ...this.validationRules], { hideSuggestions: this.hideSuggestions });
    if (invalid.length) return { errors: forClient(invalid.map((error) => inputError(document, error))) };
    return { document };
  }

  /** DateTime literals, variables, then the cost (which depends on them: `first: $n`, `inputs: $batch`). */
  private checkRunnable(document: DocumentNode, operation: OperationDefinitionNode, inputs: Record<string, unknown>): { variables: Record<string, unknown> } | { error: GraphQLError } {
    const badLiteral = remembered(this.literalsChecked, document, () => literalError(this.schema, document, this.hideSuggestions));
    if (badLiteral) return { error: badLiteral };
    const coerced = coerceVariables(this.schema, document, operation, inputs, this.hideSuggestions);
    if ('error' in coerced) return coerced;
    // The cost reads arguments only: the API schema (DateTime left as is) spares parsing dates again.
    const cost = () => costError(this.apiSchema, document, operation.name?.value, inputs, this.limits);
    const tooCostly = operation.variableDefinitions?.length ? cost() : remembered(this.costChecked, operation, cost);
    return tooCostly ? { error: tooCostly } : coerced;
  }

  /** graphql-js reports the token limit as a plain syntax error; say which limit it was. */
  private describeParseError(error: GraphQLError, source: string): void {
    if (!exceedsTokenLimit(source, this.limits)) return;
    const refused = tokenLimitError(this.limits);
    error.message = refused.message;
    Object.assign(error.extensions, { field: 'query', limit: refused.extensions.limit, max: refused.extensions.max });
  }
}

/** Distinct operation texts kept parsed and validated for graphql-ws. */
const PREPARED_CACHE_SIZE = 1_000;

function remembered<K extends object>(cache: WeakMap<K, GraphQLError | null>, key: K, check: () => GraphQLError | undefined): GraphQLError | undefined {
  let result = cache.get(key);
  if (result === undefined) {
    result = check() ?? null;
    cache.set(key, result);
  }
  return result ?? undefined;
}

/** What graphql-ws sends as is: the same masking HTTP applies in formatError. */
function forClient(errors: readonly GraphQLError[]): GraphQLError[] {
  return errors.map((error) => {
    const formatted = formatFleetError(error.toJSON());
    return new GraphQLError(formatted.message, { nodes: error.nodes, source: error.source, positions: error.positions, extensions: formatted.extensions });
  });
}
