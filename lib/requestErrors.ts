import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import type { ErrorCode } from './errors';
import type { Logger } from './logger';

/**
 * What the gateway and every subgraph answer to a request that never reaches GraphQL: a body that
 * is not JSON, of another content type, too large or badly encoded, an unknown path. Always the
 * GraphQL error shape with a contract code and a 4xx status; never Express's HTML error page,
 * which carries the stack trace and `node_modules` paths.
 */

/** Largest `POST /graphql` body. A batch of 1000 locations is ~250 KB; 2 MB leaves room for variables. */
export const GRAPHQL_BODY_LIMIT_BYTES = 2 * 1024 * 1024;

function errorBody(code: ErrorCode, message: string): { errors: Array<{ message: string; extensions: { code: ErrorCode } }> } {
  return { errors: [{ message, extensions: { code } }] };
}

/**
 * `POST /graphql` must say it carries JSON (415 otherwise): a body of another type would reach
 * GraphQL as no body at all. GET requests carry the operation in the query string.
 */
export const requireJsonBody: RequestHandler = (req, res, next) => {
  if (req.method !== 'POST' || req.is('application/json')) return next();
  res.status(415).json(errorBody('BAD_USER_INPUT', 'POST /graphql takes a JSON body: send Content-Type: application/json'));
};

/** JSON objects (or batches) only, at most GRAPHQL_BODY_LIMIT_BYTES. */
export const graphqlJsonBody: RequestHandler = express.json({ limit: GRAPHQL_BODY_LIMIT_BYTES, strict: true });

/** Any path nothing else answered. */
export const answerUnknownPath: RequestHandler = (req, res) => {
  res.status(404).json(errorBody('NOT_FOUND', `Nothing is served at ${req.method} ${req.path}; GraphQL is at /graphql`));
};

/** body-parser's error `type`s, with what the client is told. */
const BODY_ERRORS: Record<string, { status: number; message: (error: BodyError) => string }> = {
  'entity.parse.failed': { status: 400, message: () => 'The request body is not valid JSON (an object, or an array for a batch)' },
  'entity.too.large': {
    status: 413,
    message: (error) => `The request body is larger than ${Math.floor((error.limit ?? GRAPHQL_BODY_LIMIT_BYTES) / 1024)} KiB`,
  },
  'entity.verify.failed': { status: 400, message: () => 'The request body was refused' },
  'encoding.unsupported': { status: 415, message: () => 'Unsupported Content-Encoding: send identity, gzip, deflate or br' },
  'charset.unsupported': { status: 415, message: () => 'Unsupported charset: send UTF-8 JSON' },
  'request.aborted': { status: 400, message: () => 'The request body ended early' },
  'request.size.invalid': { status: 400, message: () => 'The request body is shorter or longer than its Content-Length' },
  'stream.encoding.set': { status: 500, message: () => 'Internal server error' },
};

interface BodyError extends Error {
  type?: string;
  status?: number;
  statusCode?: number;
  expose?: boolean;
  limit?: number;
}

/**
 * The last middleware of every app. Client mistakes (4xx) are answered with BAD_USER_INPUT and a
 * message of our own, never the error's, which can quote internals; anything else is an
 * INTERNAL_SERVER_ERROR, logged here with its stack.
 */
export function answerRequestError(logger: Logger): ErrorRequestHandler {
  return (error: BodyError, req, res, next) => {
    // Headers gone: Express can only cut the connection, which its own handler does.
    if (res.headersSent) return next(error);
    const known = error.type ? BODY_ERRORS[error.type] : undefined;
    const status = known?.status ?? error.status ?? error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      // e.g. a gzip body that does not inflate: zlib's error, marked as the client's by body-parser.
      const message = known?.message(error) ?? 'The request could not be read';
      logger.debug({ status, type: error.type, method: req.method, path: req.path }, 'request refused');
      res.status(status).json(errorBody('BAD_USER_INPUT', message));
      return;
    }
    logger.error({ err: error, method: req.method, path: req.path }, 'request failed');
    res.status(500).json(errorBody('INTERNAL_SERVER_ERROR', 'Internal server error'));
  };
}
