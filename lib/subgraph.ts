import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper';
import express from 'express';
import { GraphQLError, execute, parse, validate, type DocumentNode, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { CALLER_HEADER, verifyCaller, type Caller } from './caller';
import { formatFleetError } from './errors';
import { answerHealth, localUrl, type HealthChecks } from './health';
import type { Logger } from './logger';
import { answerRequestError, answerUnknownPath, graphqlJsonBody, requireJsonBody } from './requestErrors';

/**
 * One federation subgraph over HTTP: `POST /graphql` and `GET /health`. Every subgraph process is
 * this plus its own SDL, resolvers and data access. The caller comes only from the gateway's signed
 * header (see caller.ts); anything else is anonymous.
 *
 * Only the gateway talks to a subgraph, and it sends a small, stable set of planned operations, so
 * a subgraph runs them with graphql-js directly: each distinct operation text is parsed and
 * validated once (then cached), every request only executes. A full GraphQL server per subgraph
 * (Apollo Server's request pipeline, plugins, landing page) was most of each subgraph's CPU per
 * request in the benchmarks (bench/README.md).
 */
export interface SubgraphRequest {
  caller: Caller | null;
  /** The gateway signed this request (also true for an anonymous client's public mutation). */
  viaGateway: boolean;
  /** `extensions` of the GraphQL request, as sent by the gateway (e.g. the events a subscription resolves). */
  extensions: Record<string, unknown>;
}

export interface SubgraphOptions<Context extends object> {
  name: string;
  typeDefs: DocumentNode;
  resolvers: GraphQLResolverMap<Context>;
  port: number;
  /** Default loopback: only the gateway should reach a subgraph (HOST, lib/config.ts). */
  host?: string;
  callerSigningSecret: string;
  logger: Logger;
  health: HealthChecks;
  context(request: SubgraphRequest): Context | Promise<Context>;
}

export interface RunningSubgraph {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** How long a stopping subgraph lets in-flight requests finish before it cuts their connections. */
const DRAIN_MS = 5_000;
/** Distinct operation texts kept parsed and validated (the gateway's planner sends a few dozen). */
const DOCUMENT_CACHE_SIZE = 1_000;

type Prepared = { document: DocumentNode } | { errors: readonly GraphQLError[] };

/** Parse + validate once per operation text; a bounded cache, oldest out first. */
function documentCache(schema: GraphQLSchema): (query: string) => Prepared {
  const prepared = new Map<string, Prepared>();
  return (query) => {
    let entry = prepared.get(query);
    if (!entry) {
      try {
        const document = parse(query);
        const errors = validate(schema, document);
        entry = errors.length ? { errors: errors.map((e) => withCode(e, 'GRAPHQL_VALIDATION_FAILED')) } : { document };
      } catch (error) {
        entry = { errors: [withCode(error as GraphQLError, 'GRAPHQL_PARSE_FAILED')] };
      }
      if (prepared.size >= DOCUMENT_CACHE_SIZE) prepared.delete(prepared.keys().next().value as string);
      prepared.set(query, entry);
    }
    return entry;
  };
}

/** The request-error codes Apollo Server would have set; `formatFleetError` maps them to BAD_USER_INPUT. */
function withCode(error: GraphQLError, code: string): GraphQLError {
  return new GraphQLError(error.message, { nodes: error.nodes, source: error.source, positions: error.positions, path: error.path, extensions: { ...error.extensions, code } });
}

interface GraphQLBody {
  query?: unknown;
  variables?: unknown;
  operationName?: unknown;
  extensions?: unknown;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

export async function startSubgraph<Context extends object>(options: SubgraphOptions<Context>): Promise<RunningSubgraph> {
  const { logger } = options;
  const schema = buildSubgraphSchema([{ typeDefs: options.typeDefs, resolvers: options.resolvers as GraphQLResolverMap<unknown> }]);
  const prepare = documentCache(schema);
  const format = (error: GraphQLError) =>
    formatFleetError(error.toJSON(), () => logger.error({ err: error.originalError ?? error, path: error.path }, 'resolver failed'));

  const app = express();
  app.disable('x-powered-by');
  const httpServer = http.createServer(app);
  // Longer than any gateway's idle timeout (gateway/subgraphHttp.ts, and the 5 s of Node's default
  // agents), so the client, not the server, closes an idle connection: a request sent on a
  // connection the server is closing at that moment fails with "socket hang up".
  httpServer.keepAliveTimeout = 65_000;
  httpServer.headersTimeout = 66_000;
  let inFlight = 0;
  let drained: (() => void) | null = null;

  app.get('/health', (_req, res) => void answerHealth(options.health, res));
  app.post('/graphql', requireJsonBody, graphqlJsonBody, (req, res, next) => {
    inFlight += 1;
    res.once('close', () => {
      inFlight -= 1;
      if (inFlight === 0) drained?.();
    });
    const body = req.body as GraphQLBody;
    if (!isRecord(body) || typeof body.query !== 'string') {
      res.status(400).json({ errors: [{ message: 'The body must be a GraphQL request: { "query": "…" }', extensions: { code: 'BAD_USER_INPUT' } }] });
      return;
    }
    const prepared = prepare(body.query);
    if ('errors' in prepared) {
      res.status(400).json({ errors: prepared.errors.map(format) });
      return;
    }
    const header = req.headers[CALLER_HEADER];
    const { caller, viaGateway } = verifyCaller(Array.isArray(header) ? header[0] : header, options.callerSigningSecret);
    const extensions = isRecord(body.extensions) ? body.extensions : {};
    Promise.resolve(options.context({ caller, viaGateway, extensions }))
      .then((contextValue) =>
        execute({
          schema,
          document: prepared.document,
          variableValues: isRecord(body.variables) ? body.variables : undefined,
          operationName: typeof body.operationName === 'string' ? body.operationName : undefined,
          contextValue,
        }),
      )
      .then((result) => {
        const { data, errors } = result as ExecutionResult;
        // No `data` at all: the variables did not coerce, a request error (as GraphQL over HTTP says).
        const requestError = data === undefined;
        const shown = (errors ?? []).map((error) => format(requestError ? withCode(error, 'BAD_USER_INPUT') : error));
        res.status(requestError ? 400 : 200).json({ ...(requestError ? {} : { data }), ...(shown.length ? { errors: shown } : {}) });
      })
      .catch(next);
  });
  app.use(answerUnknownPath);
  app.use(answerRequestError(logger));

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port, host, () => resolve());
  });
  const { port } = httpServer.address() as AddressInfo;
  const url = localUrl(host, port, '/graphql');
  logger.info({ url, subgraph: options.name }, 'subgraph listening');
  return {
    url,
    port,
    // Stop accepting, let what is in flight finish (bounded), then close every connection.
    stop: async () => {
      const closed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
      httpServer.closeIdleConnections();
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, DRAIN_MS);
          drained = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      httpServer.closeAllConnections();
      await closed;
    },
  };
}
