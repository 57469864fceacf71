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

/** A port of its own for a process without an HTTP API (the bridge): `/health` and `/metrics`. */
export async function startStatusServer(options: {
  port: number;
  host?: string;
  checks: HealthChecks;
  registry: Registry;
}): Promise<{ url: string; close(): Promise<void> }> {
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
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
