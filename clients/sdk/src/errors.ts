/**
 * What the SDK throws. Every error the API answers becomes a FleetApiError carrying the contract's
 * `extensions.code` and the fields a client acts on; a request that got no GraphQL answer at all is
 * a FleetNetworkError; a live socket the server closed for good is a FleetConnectionError.
 */
export type FleetErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'BAD_USER_INPUT'
  | 'NOT_FOUND'
  | 'RATE_LIMITED'
  | 'INTERNAL_SERVER_ERROR';

const CODES = new Set<string>(['UNAUTHENTICATED', 'FORBIDDEN', 'BAD_USER_INPUT', 'NOT_FOUND', 'RATE_LIMITED', 'INTERNAL_SERVER_ERROR']);

/** An error as the API sends it (GraphQL's formatted error). */
export interface ApiError {
  message: string;
  path?: ReadonlyArray<string | number>;
  extensions?: Record<string, unknown>;
}

const numberOrUndefined = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);

export class FleetApiError extends Error {
  override readonly name = 'FleetApiError';
  /** The contract's code (an unknown one is reported as INTERNAL_SERVER_ERROR). */
  readonly code: FleetErrorCode;
  /** BAD_USER_INPUT (and some NOT_FOUND): the offending input field. */
  readonly field?: string;
  /** BAD_USER_INPUT in a list argument (recordLocations): which item. */
  readonly index?: number;
  /** RATE_LIMITED, or a passing INTERNAL_SERVER_ERROR (HTTP 503): when to try again. */
  readonly retryAfterMs?: number;
  /** RATE_LIMITED: which limit was hit (a number or the limit's name, as the API says). */
  readonly limit?: number | string;
  /** The HTTP status of the answer (absent for errors delivered on the live socket). */
  readonly status?: number;
  readonly path?: ReadonlyArray<string | number>;
  /** Every error of the answer; this error describes the first. */
  readonly errors: ApiError[];

  constructor(errors: ApiError[], status?: number) {
    const first = errors[0] ?? { message: 'The API answered with an error' };
    super(first.message);
    const extensions = first.extensions ?? {};
    const code = typeof extensions.code === 'string' && CODES.has(extensions.code) ? extensions.code : 'INTERNAL_SERVER_ERROR';
    this.code = code as FleetErrorCode;
    if (typeof extensions.field === 'string') this.field = extensions.field;
    this.index = numberOrUndefined(extensions.index);
    this.retryAfterMs = numberOrUndefined(extensions.retryAfterMs);
    if (typeof extensions.limit === 'number' || typeof extensions.limit === 'string') this.limit = extensions.limit;
    this.status = status;
    this.path = first.path;
    this.errors = errors;
  }
}

/** The request got no GraphQL answer: the network failed, or something else than the API answered. */
export class FleetNetworkError extends Error {
  override readonly name = 'FleetNetworkError';
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The live socket was closed with a code that reconnecting cannot fix (a protocol error, say). */
export class FleetConnectionError extends Error {
  override readonly name = 'FleetConnectionError';
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`The live connection closed: ${code} ${reason}`.trim());
  }
}

export function isApiErrorList(value: unknown): value is ApiError[] {
  return Array.isArray(value) && value.every((e) => typeof e === 'object' && e !== null && typeof (e as ApiError).message === 'string');
}
