import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';

/**
 * `GET /health`: 200 once the process can serve, 503 while a dependency it needs is down
 * (CONTRACT.md). Each check answers whether one dependency is usable right now; the body names
 * them so an operator sees which one failed.
 */
export type HealthChecks = Record<string, () => boolean | Promise<boolean>>;

export interface HealthReport {
  status: 'ok' | 'unavailable';
  checks: Record<string, 'ok' | 'failing'>;
}

export async function checkHealth(checks: HealthChecks): Promise<HealthReport> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      try {
        return [name, (await check()) ? 'ok' : 'failing'] as const;
      } catch {
        return [name, 'failing'] as const;
      }
    }),
  );
  const report = Object.fromEntries(entries) as HealthReport['checks'];
  return { status: entries.every(([, state]) => state === 'ok') ? 'ok' : 'unavailable', checks: report };
}

export async function answerHealth(checks: HealthChecks, res: http.ServerResponse): Promise<void> {
  const report = await checkHealth(checks);
  res.writeHead(report.status === 'ok' ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(report));
}

export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** A URL this machine can use for a server listening on `host` (a wildcard address means loopback too). */
export function localUrl(host: string, port: number, path = ''): string {
  const address = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `http://${address.includes(':') ? `[${address}]` : address}:${port}${path}`;
}

/**
 * A port of its own for `/health` and `/metrics`: the bridge's only port, the gateway's internal
 * one (its metrics stay off the public port). Loopback unless `host` says otherwise.
 */
export async function startStatusServer(options: {
  port: number;
  host?: string;
  checks: HealthChecks;
  registry: Registry;
}): Promise<{ url: string; close(): Promise<void> }> {
  const host = options.host ?? '127.0.0.1';
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/health') {
      void answerHealth(options.checks, res);
    } else if (req.method === 'GET' && path === '/metrics') {
      options.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': options.registry.contentType });
          res.end(body);
        },
        () => {
          res.writeHead(500).end();
        },
      );
    } else {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ errors: [{ message: 'Only GET /health and GET /metrics are served here', extensions: { code: 'NOT_FOUND' } }] }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: localUrl(host, port),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
