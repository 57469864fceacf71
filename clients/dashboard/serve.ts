import path from 'node:path';
import { build } from 'esbuild';
import { Router, type Response } from 'express';
import type { Logger } from '../../lib/logger';

/**
 * The live fleet dashboard, served by the gateway at /dashboard. Its bundle (the dashboard, the SDK
 * and Leaflet) is built by esbuild in memory on the first request: no build step to forget on a
 * fresh clone, nothing written into the source tree (the image runs it read-only), and a gateway
 * that nobody opens the dashboard on never pays for it.
 */
export interface DashboardOptions {
  /** Leaflet tile URL template; with no tiles reachable the map still draws on a plain background. */
  tileUrl: string;
  logger: Logger;
}

export const DEFAULT_TILE_URL = 'https://tile.openstreetmap.org/{z}/{x}/{y}.png';

const SOURCE = path.join(__dirname, 'src');

interface Asset {
  body: string | Uint8Array;
  type: string;
}

async function bundle(): Promise<Map<string, Asset>> {
  const result = await build({
    entryPoints: [path.join(SOURCE, 'main.ts')],
    bundle: true,
    write: false,
    minify: true,
    format: 'iife',
    target: 'es2020',
    outdir: '/',
    loader: { '.png': 'dataurl', '.svg': 'dataurl' },
    logLevel: 'silent',
  });
  const assets = new Map<string, Asset>();
  for (const file of result.outputFiles) {
    const name = path.basename(file.path);
    assets.set(name, { body: file.contents, type: name.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8' });
  }
  return assets;
}

/** `img-src` for the tile server: its origin, `{s}` subdomains as a wildcard. */
export function tileSource(tileUrl: string): string {
  const origin = /^(https?:\/\/[^/]+)/i.exec(tileUrl)?.[1];
  return origin ? origin.replace('{s}', '*') : '';
}

export function dashboardRouter(options: DashboardOptions): Router {
  const router = Router();
  let assets: Promise<Map<string, Asset>> | undefined;
  const assetsNow = () =>
    (assets ??= bundle().catch((error: unknown) => {
      assets = undefined; // a later request tries again (e.g. after the source was fixed)
      throw error;
    }));
  // Only what the page needs: its own scripts and styles (Leaflet positions elements with inline
  // styles), tiles from the configured server, the API on this origin (HTTP and graphql-ws).
  const csp = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    `img-src 'self' data: ${tileSource(options.tileUrl)}`.trim(),
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  const send = (res: Response, type: string, body: string | Uint8Array) => {
    res.set({
      'content-type': type,
      'content-security-policy': csp,
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-cache',
    });
    res.send(typeof body === 'string' ? body : Buffer.from(body));
  };

  // Relative asset URLs need the trailing slash.
  router.get('/', (req, res, next) => (req.originalUrl.split('?')[0]?.endsWith('/') ? next() : res.redirect(301, `${req.baseUrl}/`)));
  router.get('/', (_req, res) => send(res, 'text/html; charset=utf-8', INDEX_HTML));
  router.get('/config.json', (_req, res) => send(res, 'application/json', JSON.stringify({ tileUrl: options.tileUrl })));
  router.get('/:asset', async (req, res, next) => {
    let built: Map<string, Asset>;
    try {
      built = await assetsNow();
    } catch (error) {
      options.logger.error({ err: error }, 'could not build the dashboard');
      return next(error);
    }
    const asset = built.get(req.params.asset);
    if (!asset) return next(); // the gateway's 404
    send(res, asset.type, asset.body);
  });
  return router;
}

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Fleet dashboard</title>
  <link rel="stylesheet" href="main.css">
  <script src="main.js" defer></script>
</head>
<body>
  <header>
    <h1>Fleet</h1>
    <select id="tenant" hidden aria-label="Tenant"></select>
    <span id="who"></span>
    <button id="sign-out" type="button" hidden>Sign out</button>
    <span id="connection" data-state="signed-out" role="status">signed out</span>
  </header>
  <form id="sign-in">
    <h2>Sign in</h2>
    <label>Email <input name="email" type="email" autocomplete="username" required></label>
    <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
    <button type="submit">Sign in</button>
    <p id="sign-in-error" role="alert"></p>
  </form>
  <main id="fleet" hidden>
    <div id="map"></div>
    <section id="devices" role="table" aria-label="Devices">
      <div class="row head" role="row"><span role="columnheader">Device</span><span role="columnheader">Position</span><span role="columnheader">Speed</span><span role="columnheader">Heading</span><span role="columnheader">Age</span></div>
      <div class="rows" role="rowgroup"></div>
    </section>
  </main>
</body>
</html>
`;
