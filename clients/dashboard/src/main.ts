import { FleetApiError, createFleetClient, signIn, type ConnectionState, type FleetClient, type FleetSession, type LiveLocation, type LocationStream } from '../../sdk/src/index';
import './dashboard.css';
import { DeviceTable } from './deviceTable';
import { FleetMap, TRAIL_LENGTH } from './fleetMap';

/**
 * The live fleet dashboard: sign in, pick a tenant (ADMIN) or see your own (MEMBER), then a device
 * list and a map that follow `locationUpdated` through the SDK. Locations are applied once per
 * animation frame, however many arrived, so hundreds of devices moving every second cost one map
 * redraw and a few cell writes per frame.
 */
type Shown = Pick<LiveLocation, 'sequence' | 'latitude' | 'longitude' | 'speed' | 'heading' | 'recordedAt'>;

interface DeviceState {
  name: string;
  last: Shown | null;
  /** Sequences of the positions on the trail, oldest first. */
  trail: number[];
}

/** What a test or a curious operator can read from the console: window.fleetDashboard. */
interface Inspection {
  connection(): string | undefined;
  device(id: string): { name: string; sequence?: number; latitude?: number; longitude?: number; trail: number[]; screen?: { x: number; y: number } } | undefined;
  /** Milliseconds each frame spent applying locations, since the last call. */
  takeFrameWork(): number[];
}

declare global {
  interface Window {
    fleetDashboard?: Inspection;
  }
}

/** Per frame, how long applying locations may take; the rest of the frame is the browser's. */
const FRAME_BUDGET_MS = 6;
const API_URL = new URL('../graphql', window.location.href).href;
const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  signIn: byId<HTMLFormElement>('sign-in'),
  signInError: byId<HTMLParagraphElement>('sign-in-error'),
  fleet: byId<HTMLElement>('fleet'),
  tenant: byId<HTMLSelectElement>('tenant'),
  who: byId<HTMLSpanElement>('who'),
  signOut: byId<HTMLButtonElement>('sign-out'),
  connection: byId<HTMLSpanElement>('connection'),
  rows: document.querySelector('#devices .rows') as HTMLElement,
};

const devices = new Map<string, DeviceState>();
const table = new DeviceTable(ui.rows);
let map: FleetMap | undefined;
let session: FleetSession | undefined;
let fleet: FleetClient | undefined;
let stream: LocationStream | undefined;
let pending: LiveLocation[] = [];
let frameRequested = false;
const frameWork: number[] = [];

function showConnection(state: ConnectionState): void {
  const label = { live: 'live', reconnecting: 'reconnecting', connecting: 'connecting', idle: 'connecting', 'signed-out': 'signed out' }[state];
  ui.connection.dataset.state = state === 'idle' ? 'connecting' : state;
  ui.connection.textContent = label;
}

function apply(deviceId: string, name: string, location: Shown): void {
  let device = devices.get(deviceId);
  if (!device) {
    device = { name, last: null, trail: [] };
    devices.set(deviceId, device);
  }
  device.last = location;
  device.trail.push(location.sequence);
  if (device.trail.length > TRAIL_LENGTH) device.trail.splice(0, device.trail.length - TRAIL_LENGTH);
  map?.move(deviceId, name, location);
  table.show(deviceId, name, location, Date.now());
}

/**
 * Applies what arrived since the last frame, within a time budget: a burst (every device reporting
 * at once) is spread over a few frames instead of stalling one. Order is kept: the rest waits.
 */
function flush(): void {
  frameRequested = false;
  const started = performance.now();
  let applied = 0;
  while (applied < pending.length && (applied === 0 || performance.now() - started < FRAME_BUDGET_MS)) {
    const location = pending[applied++] as LiveLocation;
    apply(location.device.id, location.device.name, location);
  }
  pending = applied === pending.length ? [] : pending.slice(applied);
  map?.frame();
  frameWork.push(performance.now() - started);
  if (frameWork.length > 10_000) frameWork.splice(0, 5_000);
  if (pending.length) requestFrame();
}

function requestFrame(): void {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(flush);
}

function receive(location: LiveLocation): void {
  pending.push(location);
  requestFrame();
}

async function follow(tenantId: string): Promise<void> {
  if (!fleet) return;
  stream?.close();
  pending = []; // the previous tenant's, not yet applied
  devices.clear();
  table.clear();
  map?.clear();
  const tenant = await fleet.tenant(tenantId);
  if (!tenant) return;
  const now = Date.now();
  for (const device of [...tenant.devices].sort((a, b) => a.name.localeCompare(b.name))) {
    if (device.lastLocation) apply(device.id, device.name, device.lastLocation);
    else table.show(device.id, device.name, null, now);
  }
  map?.frame();
  // Resume from what the list shows: anything accepted since it was read comes first.
  const after = tenant.devices.flatMap((d) => (d.lastLocation ? [{ deviceId: d.id, sequence: d.lastLocation.sequence }] : []));
  const current = fleet.locationUpdated({ tenantId, after });
  stream = current;
  try {
    for await (const location of current) receive(location);
  } catch (error) {
    if (error instanceof FleetApiError && error.code === 'UNAUTHENTICATED') await signOut();
    else ui.who.textContent = `${ui.who.textContent ?? ''} (live updates stopped: ${error instanceof Error ? error.message : String(error)})`;
  }
}

async function start(): Promise<void> {
  if (!fleet) return;
  const me = await fleet.me();
  if (!me) return signOut();
  ui.who.textContent = `${me.email} (${me.role.toLowerCase()})`;
  ui.signIn.hidden = true;
  ui.fleet.hidden = false;
  ui.signOut.hidden = false;
  map ??= new FleetMap(byId('map'), await tileUrl());
  if (me.role === 'ADMIN') {
    const tenants = await fleet.tenants();
    ui.tenant.replaceChildren(...tenants.map((t) => new Option(t.name, t.id)));
    ui.tenant.hidden = tenants.length === 0;
    if (tenants[0]) await follow(tenants[0].id);
  } else if (me.tenant) {
    ui.tenant.hidden = true;
    await follow(me.tenant.id);
  } else {
    ui.who.textContent += ' – not a member of a tenant yet';
  }
}

async function signOut(): Promise<void> {
  session?.signOut();
  stream?.close();
  await fleet?.close();
  fleet = undefined;
  session = undefined;
  ui.fleet.hidden = true;
  ui.signOut.hidden = true;
  ui.tenant.hidden = true;
  ui.signIn.hidden = false;
  ui.who.textContent = '';
  showConnection('signed-out');
}

let tileUrlRead: Promise<string> | undefined;
function tileUrl(): Promise<string> {
  return (tileUrlRead ??= fetch('config.json')
    .then((response) => response.json() as Promise<{ tileUrl: string }>)
    .then((config) => config.tileUrl));
}

ui.signIn.addEventListener('submit', (event) => {
  event.preventDefault();
  const form = new FormData(ui.signIn);
  ui.signInError.textContent = '';
  void (async () => {
    try {
      session = await signIn({ url: API_URL, email: String(form.get('email')), password: String(form.get('password')) });
      fleet = createFleetClient({ url: API_URL, getToken: session.getToken, onConnectionChange: showConnection });
      await start();
    } catch (error) {
      ui.signInError.textContent = error instanceof FleetApiError ? error.message : 'The platform could not be reached';
    }
  })();
});
ui.signOut.addEventListener('click', () => void signOut());
ui.tenant.addEventListener('change', () => void follow(ui.tenant.value));
setInterval(() => table.tick(Date.now()), 1_000);

window.fleetDashboard = {
  connection: () => ui.connection.dataset.state,
  device: (id) => {
    const device = devices.get(id);
    if (!device) return undefined;
    return { name: device.name, sequence: device.last?.sequence, latitude: device.last?.latitude, longitude: device.last?.longitude, trail: [...device.trail], screen: map?.screenPosition(id) };
  },
  takeFrameWork: () => frameWork.splice(0),
};
