import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { RunningGateway } from '../../gateway/server';
import { adminSession, createTenant, graphql, memberOf, registerDevice, type Session } from '../support/client';
import { startGatewayReplica } from '../support/gatewayReplica';
import { startTestStack, type TestStack } from '../support/stack';

/**
 * The dashboard in a real browser (Debian's Chromium, driven by playwright-core), served by the
 * stack's gateway at /dashboard, with no map tiles reachable (this machine has no internet): sign
 * in, watch a marker move within a second of a recorded location, see the connection indicator
 * go to "reconnecting" while the gateway restarts and back to "live" with no location missing
 * from the trail. The screenshot lands in test-artifacts/ (gitignored).
 */
/** What the dashboard exposes on window (clients/dashboard/src/main.ts), as seen from page.evaluate. */
interface InPage {
  fleetDashboard?: {
    device(id: string): { sequence?: number; trail: number[]; screen?: { x: number; y: number } } | undefined;
    takeFrameWork(): number[];
  };
}
const ARTIFACTS = path.resolve(__dirname, '..', '..', 'test-artifacts');
let stack: TestStack;
let browser: Browser;
let admin: Session;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  stack = await startTestStack();
  admin = await adminSession(stack);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  mkdirSync(ARTIFACTS, { recursive: true });
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await browser?.close();
  await stack?.stop();
});

async function record(api: string, member: Session, inputs: Array<{ deviceId: string; latitude: number; longitude: number; speed?: number; heading?: number }>): Promise<number[]> {
  const response = await graphql(api, 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { sequence } }', { i: inputs }, { token: member.token });
  if (!response.data) throw new Error(JSON.stringify(response.errors));
  return response.data.recordLocations.map((l: { sequence: number }) => l.sequence);
}

/**
 * A device app's upload: an upload the platform refused as a whole with a passing server error
 * (e.g. its transaction outran its bound on a loaded machine) stored nothing (all or nothing),
 * so it is sent again. Any location stored twice would show as a sequence past the expected one.
 */
async function upload(api: string, member: Session, inputs: Parameters<typeof record>[2]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await record(api, member, inputs);
      return;
    } catch (error) {
      if (attempt === 3 || !String(error).includes('INTERNAL_SERVER_ERROR')) throw error;
    }
  }
}

async function signedIn(page: Page, gatewayUrl: string, user: { email: string }, password = 'member-password-1'): Promise<void> {
  await page.goto(gatewayUrl.replace(/\/graphql$/, '/dashboard'));
  await page.fill('input[name=email]', user.email);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('#connection[data-state="live"]');
}

const device = (page: Page, id: string) => page.evaluate((deviceId) => (globalThis as unknown as InPage).fleetDashboard?.device(deviceId), id);

test('sign in, a marker moves within a second, and a gateway restart costs no location on the trail', async () => {
  const tenantId = await createTenant(stack, admin, 'Browser Freight');
  const member = await memberOf(stack, admin, tenantId, 'dispatcher');
  const truck = await registerDevice(stack, member, 'truck-7');
  const van = await registerDevice(stack, member, 'van-3');
  await record(stack.gatewayUrl, member, [{ deviceId: van, latitude: 52.51, longitude: 13.38, speed: 8, heading: 180 }]);

  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const consoleErrors: string[] = [];
  page.on('console', (message) => {
    // Tiles cannot load here; that is the point. Anything else is a bug.
    if (message.type() === 'error' && !/tile\.openstreetmap\.org|ERR_NAME_NOT_RESOLVED|ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED|Failed to load resource/.test(message.text())) consoleErrors.push(message.text());
  });
  await signedIn(page, stack.gatewayUrl, member);
  await page.waitForSelector('#devices .row[data-device-id]');
  expect(await page.locator('#devices .rows .row').count()).toBe(2);
  await expect(page.locator('#devices .row', { hasText: 'van-3' }).textContent()).resolves.toMatch(/52\.51000, 13\.38000.*28\.8 km\/h.*180° S.*s ago/);
  // The plain background carries coordinates on its axes.
  expect(await page.locator('.axes .lat').count()).toBeGreaterThan(0);
  expect(await page.locator('.axes .lng').count()).toBeGreaterThan(0);

  // A marker moves within a second of the location being accepted.
  await record(stack.gatewayUrl, member, [{ deviceId: truck, latitude: 52.5, longitude: 13.4 }]);
  await page.waitForFunction((id) => (globalThis as unknown as InPage).fleetDashboard?.device(id)?.sequence === 1, truck);
  const before = (await device(page, truck))?.screen;
  const [moved] = await record(stack.gatewayUrl, member, [{ deviceId: truck, latitude: 52.505, longitude: 13.41 }]);
  const accepted = Date.now();
  await page.waitForFunction(([id, sequence]) => (globalThis as unknown as InPage).fleetDashboard?.device(id as string)?.sequence === sequence, [truck, moved] as const);
  const seenAfterMs = Date.now() - accepted;
  const after = (await device(page, truck))?.screen;
  expect(after).toBeDefined();
  expect(after).not.toEqual(before);
  expect(seenAfterMs).toBeLessThan(1000);

  // The gateway restarts on its port; locations accepted meanwhile (through another replica).
  const replica = await startGatewayReplica(stack);
  cleanups.push(() => replica.stop());
  const port = stack.gateway.port;
  await stack.gateway.stop();
  await page.waitForSelector('#connection[data-state="reconnecting"]');
  const missed = await record(replica.url, member, [3, 4, 5].map((i) => ({ deviceId: truck, latitude: 52.5 + i * 0.005, longitude: 13.4 + i * 0.01 })));
  const restarted: RunningGateway = await startGatewayReplica(stack, port);
  cleanups.push(() => restarted.stop());
  await page.waitForSelector('#connection[data-state="live"]');
  const [last] = await record(stack.gatewayUrl, member, [{ deviceId: truck, latitude: 52.53, longitude: 13.45 }]);
  await page.waitForFunction(([id, sequence]) => (globalThis as unknown as InPage).fleetDashboard?.device(id as string)?.sequence === sequence, [truck, last] as const);
  expect(missed).toEqual([3, 4, 5]);
  expect((await device(page, truck))?.trail).toEqual([1, 2, 3, 4, 5, 6]);

  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png') });
  expect(consoleErrors).toEqual([]);
  await page.close();
});

test('a wrong password is said so; an ADMIN picks the tenant to watch', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(stack.gatewayUrl.replace(/\/graphql$/, '/dashboard'));
  await expect(page.locator('#connection').textContent()).resolves.toBe('signed out');
  await page.fill('input[name=email]', stack.admin.email);
  await page.fill('input[name=password]', 'not-the-password');
  await page.click('button[type=submit]');
  await page.waitForFunction(() => (globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } }).document.querySelector('#sign-in-error')?.textContent !== '');
  expect(await page.locator('#sign-in-error').textContent()).toMatch(/password|credentials|incorrect|invalid/i);
  expect(await page.locator('#fleet').isHidden()).toBe(true);

  const first = await createTenant(stack, admin, 'Alpha Haulage');
  const second = await createTenant(stack, admin, 'Zulu Couriers');
  const member = await memberOf(stack, admin, second, 'courier');
  const bike = await registerDevice(stack, member, 'bike-1');
  await record(stack.gatewayUrl, member, [{ deviceId: bike, latitude: 48.2, longitude: 16.37 }]);
  await signedIn(page, stack.gatewayUrl, stack.admin, stack.admin.password);
  const options = await page.locator('#tenant option').allTextContents();
  expect(options).toEqual(expect.arrayContaining(['Alpha Haulage', 'Zulu Couriers']));
  await page.selectOption('#tenant', second);
  await page.waitForSelector(`#devices .row[data-device-id="${bike}"]`);
  expect(await page.locator('#devices .rows .row').allTextContents()).toEqual([expect.stringMatching(/^bike-148\.20000, 16\.37000/)]);
  // Live for the picked tenant: the next location of its device reaches the map.
  const [next] = await record(stack.gatewayUrl, member, [{ deviceId: bike, latitude: 48.21, longitude: 16.38 }]);
  await page.waitForFunction(([id, sequence]) => (globalThis as unknown as InPage).fleetDashboard?.device(id as string)?.sequence === sequence, [bike, next] as const);
  expect(first).not.toBe(second);
  await page.close();
});

/** Percentile of a sorted list. */
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

test('500 devices moving every second: frames stay smooth and every location reaches the map', async () => {
  const DEVICES = 500;
  const SECONDS = 10;
  const tenantId = await createTenant(stack, admin, 'Five Hundred');
  const member = await memberOf(stack, admin, tenantId, 'operator');
  const ids: string[] = [];
  for (let i = 0; i < DEVICES; i += 25) ids.push(...(await Promise.all(Array.from({ length: 25 }, (_, j) => registerDevice(stack, member, `unit-${String(i + j).padStart(3, '0')}`)))));

  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await signedIn(page, stack.gatewayUrl, member);
  await page.waitForFunction((count) => (globalThis as unknown as { document: { querySelectorAll(selector: string): { length: number } } }).document.querySelectorAll('#devices .rows .row').length === count, DEVICES);
  // Every animation frame's interval while the fleet moves: what a person sees as smooth or not.
  await page.evaluate(() => {
    const state = globalThis as unknown as { frameIntervals: number[]; measuring: boolean; requestAnimationFrame(callback: (now: number) => void): void };
    state.frameIntervals = [];
    state.measuring = true;
    let last = performance.now();
    const frame = (now: number) => {
      state.frameIntervals.push(now - last);
      last = now;
      if (state.measuring) state.requestAnimationFrame(frame);
    };
    state.requestAnimationFrame(frame);
    (globalThis as unknown as InPage).fleetDashboard?.takeFrameWork();
  });

  // Each second, one position per device, on a circle around Berlin.
  const started = Date.now();
  for (let second = 1; second <= SECONDS; second++) {
    const positions = ids.map((deviceId, i) => {
      const angle = (i / DEVICES) * 2 * Math.PI + second / 20;
      return { deviceId, latitude: 52.52 + 0.1 * Math.sin(angle) * (1 + (i % 5) / 10), longitude: 13.4 + 0.16 * Math.cos(angle) * (1 + (i % 5) / 10), speed: 10 + (i % 20), heading: (i * 7) % 360 };
    });
    // Devices report on their own, not as one 500-item transaction: ten uploads of 50 at once.
    await Promise.all(Array.from({ length: 10 }, (_, k) => upload(stack.gatewayUrl, member, positions.slice(k * 50, (k + 1) * 50))));
    // The load's own clock: the next second's positions are due then (no event to wait for).
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + second * 1000 - Date.now())));
  }
  await page.waitForFunction(
    ([all, sequence]) => (all as string[]).every((id) => (globalThis as unknown as InPage).fleetDashboard?.device(id)?.sequence === sequence),
    [ids, SECONDS] as const,
    { timeout: 30_000, polling: 250 },
  );
  const { intervals, work } = await page.evaluate(() => {
    const state = globalThis as unknown as { frameIntervals: number[]; measuring: boolean };
    state.measuring = false;
    return { intervals: state.frameIntervals.slice(1), work: (globalThis as unknown as InPage).fleetDashboard?.takeFrameWork() ?? [] };
  });
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-500.png') });
  await page.close();

  const frames = [...intervals].sort((a, b) => a - b);
  const applied = [...work].sort((a, b) => a - b);
  const report = {
    devices: DEVICES,
    seconds: SECONDS,
    frames: frames.length,
    frameIntervalMs: { p50: percentile(frames, 50), p95: percentile(frames, 95), p99: percentile(frames, 99), max: frames.at(-1) },
    framesOver50ms: frames.filter((f) => f > 50).length,
    applyPerFrameMs: { p50: percentile(applied, 50), p95: percentile(applied, 95), max: applied.at(-1) },
  };
  writeFileSync(path.join(ARTIFACTS, 'dashboard-frames.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log(`dashboard with ${DEVICES} devices moving every second: ${JSON.stringify(report)}`);
  // What the dashboard itself controls: applying arrivals stays within a frame's budget. The frame
  // interval also depends on everything else this 2-core machine runs at the time (the figures are
  // in README.md, measured on a quiet machine), so its bound only catches a dashboard that stalls.
  expect(report.applyPerFrameMs.p95).toBeLessThan(16);
  expect(report.frameIntervalMs.p95).toBeLessThan(100);
}, 180_000);
