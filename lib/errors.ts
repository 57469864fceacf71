import { GraphQLError, type GraphQLFormattedError } from 'graphql';

/**
 * The contract's error codes (CONTRACT.md, "Errors"). Every error a client sees carries one of
 * them in `extensions.code`; resolvers throw the classes below and match with `instanceof`.
 */
export const ERROR_CODES = [
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'BAD_USER_INPUT',
  'NOT_FOUND',
  'RATE_LIMITED',
  'INTERNAL_SERVER_ERROR',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = { UNAUTHENTICATED: 401, BAD_USER_INPUT: 400 };

export class FleetError extends GraphQLError {
  constructor(
    readonly code: ErrorCode,
    message: string,
    extensions: Record<string, unknown> = {},
  ) {
    super(message, { extensions: { ...extensions, code } });
    this.name = 'FleetError';
  }
}

export class Unauthenticated extends FleetError {
  /**
   * `rejectsRequest`: raised before execution (at the gateway, for a bad token), so the whole HTTP
   * response is a 401. Inside a resolver it stays a field error with status 200, as GraphQL expects.
   */
  constructor(message = 'A valid bearer token is required', options: { rejectsRequest?: boolean } = {}) {
    super('UNAUTHENTICATED', message, options.rejectsRequest ? { http: { status: HTTP_STATUS.UNAUTHENTICATED } } : {});
  }
}

export class Forbidden extends FleetError {
  constructor(message = 'Not allowed for this caller') {
    super('FORBIDDEN', message);
  }
}

/** What a BAD_USER_INPUT error tells the client besides `field` (README, "Operation limits and input errors"). */
export interface InputErrorDetails {
  /** Which item of a list argument (e.g. `recordLocations(inputs:)`). */
  index?: number;
  /** The operation limit that was exceeded (`depth`, `aliases`, `directives`, `tokens`, `cost`). */
  limit?: string;
  /** That limit's configured maximum. */
  max?: number;
}

export class BadUserInput extends FleetError {
  /**
   * `field` names the offending input field. `rejectsRequest`: raised by the gateway before the
   * operation runs (limits, malformed values), so the whole HTTP response is a 400.
   */
  constructor(
    readonly field: string,
    message: string,
    details: InputErrorDetails = {},
    options: { rejectsRequest?: boolean } = {},
  ) {
    super('BAD_USER_INPUT', message, {
      field,
      ...details,
      ...(options.rejectsRequest ? { http: { status: HTTP_STATUS.BAD_USER_INPUT } } : {}),
    });
  }
}

export class NotFound extends FleetError {
  constructor(what: string, extensions: { field?: string; index?: number } = {}) {
    super('NOT_FOUND', `${what} not found`, extensions);
  }
}

export class RateLimited extends FleetError {
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super('RATE_LIMITED', message, { retryAfterMs });
  }
}

/**
 * A passing failure: a dependency (the database, a subgraph, Redis, the user pool) could not answer
 * now. Nothing about the request was wrong; the client retries after `retryAfterMs` (HTTP 503 with
 * `Retry-After` when the whole operation failed). The one error the platform retries on, and the
 * one it tells clients to retry: match it with `instanceof` or its `retriable` flag.
 */
export class TemporarilyUnavailable extends FleetError {
  readonly retriable = true;
  constructor(
    message = 'Temporarily unavailable; retry',
    readonly retryAfterMs = 1000,
    options: { cause?: unknown } = {},
  ) {
    super('INTERNAL_SERVER_ERROR', message, { retryAfterMs });
    if (options.cause !== undefined) (this as { cause?: unknown }).cause = options.cause;
  }
}

const KNOWN_CODES = new Set<string>(ERROR_CODES);

/**
 * Errors graphql-js and Apollo raise before any resolver runs (parse, validation, variable
 * coercion) are malformed input from the client's point of view. The value is the `field` they
 * point at when nothing more precise is known (the gateway locates validation errors itself).
 */
const INPUT_CODES = new Map([
  ['GRAPHQL_PARSE_FAILED', 'query'],
  ['GRAPHQL_VALIDATION_FAILED', 'query'],
  ['BAD_REQUEST', 'query'],
  ['OPERATION_RESOLUTION_FAILURE', 'operationName'],
  ['PERSISTED_QUERY_NOT_SUPPORTED', 'query'],
  ['PERSISTED_QUERY_NOT_FOUND', 'query'],
]);

/**
 * Apollo `formatError` for every process: keeps the contract's codes, maps pre-execution failures
 * to BAD_USER_INPUT, and replaces everything else with a bare INTERNAL_SERVER_ERROR so no stack
 * trace, SQL or upstream detail reaches a client.
 */
export function formatFleetError(formatted: GraphQLFormattedError, onInternal?: (formatted: GraphQLFormattedError) => void): GraphQLFormattedError {
  const extensions = { ...(formatted.extensions ?? {}) };
  delete extensions.stacktrace;
  delete extensions.exception;
  delete extensions.serviceName;
  delete extensions.response; // a subgraph's URL and raw body, added by the gateway's data source
  delete extensions.http;
  const code = typeof extensions.code === 'string' ? extensions.code : undefined;
  if (code && KNOWN_CODES.has(code) && code !== 'INTERNAL_SERVER_ERROR') {
    return { ...formatted, extensions };
  }
  const inputField = code ? INPUT_CODES.get(code) : undefined;
  if (inputField) {
    delete extensions.validationErrorCode; // Apollo's name for the rule that failed
    return { ...formatted, extensions: { field: inputField, ...extensions, code: 'BAD_USER_INPUT' } };
  }
  onInternal?.(formatted);
  // A retry hint is the one detail worth keeping: it tells the client this is passing.
  const retryAfterMs = typeof extensions.retryAfterMs === 'number' ? { retryAfterMs: extensions.retryAfterMs } : {};
  return {
    message: 'Internal server error',
    ...(formatted.path ? { path: formatted.path } : {}),
    ...(formatted.locations ? { locations: formatted.locations } : {}),
    extensions: { code: 'INTERNAL_SERVER_ERROR', ...retryAfterMs },
  };
}
