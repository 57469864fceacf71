import { once } from 'node:events';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SUPERGRAPH_CONFIG, composeSupergraph, fileSupergraph } from '../../gateway/supergraph';
import { adminSession, codes, createTenant, graphql, memberOf, registerDevice, type Session } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';
import { connectDashboard, type Dashboard } from '../support/subscriber';

/**
 * The gateway picks up a new supergraph while locations stream, without a restart: queries use it at
 * once, open subscriptions are re-planned on the same sockets, one whose operation no longer
 * validates ends with an error and `complete`, and a supergraph that does not build is refused.
 */
const dir = mkdtempSync(path.join(tmpdir(), 'fleet-supergraph-'));
const file = path.join(dir, 'supergraph.graphql');
let stack: TestStack;
let member: Session;
let tenantId: string;
let deviceId: string;
let dashboard: Dashboard;

beforeAll(async () => {
  stack = await startTestStack({
    supergraph: (sdl) => {
      writeFileSync(file, sdl);
      return fileSupergraph(file);
    },
    supergraphPollMs: 50,
  });
  const admin = await adminSession(stack);
  tenantId = await createTenant(stack, admin);
  member = await memberOf(stack, admin, tenantId);
  deviceId = await registerDevice(stack, member);
  dashboard = connectDashboard(stack.wsUrl, member.token);
});
afterAll(async () => {
  await dashboard?.dispose();
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The running subgraphs' schemas composed again, with `edit` applied to the location subgraph's SDL. */
function supergraphWith(edit: (locationSdl: string) => string): string {
  const copy = mkdtempSync(path.join(dir, 'compose-'));
  const config = path.join(copy, 'supergraph.yaml');
  writeFileSync(config, readFileSync(SUPERGRAPH_CONFIG, 'utf8').replace(/\.\/subgraphs\/(\w+)\/schema\.graphql/g, './$1.graphql'));
  for (const name of ['auth', 'tenant', 'location']) {
    copyFileSync(path.resolve(SUPERGRAPH_CONFIG, '..', 'subgraphs', name, 'schema.graphql'), path.join(copy, `${name}.graphql`));
  }
  const location = path.join(copy, 'location.graphql');
  writeFileSync(location, edit(readFileSync(location, 'utf8')));
  return composeSupergraph({ configPath: config, routingUrls: stack.subgraphUrls });
}

async function reloaded(write: () => void): Promise<boolean> {
  const before = readFileSync(file, 'utf8');
  write();
  // The poll picks the change up; the same answer comes from asking for the reload directly.
  const result = await stack.gateway.reloadSupergraph();
  expect(readFileSync(file, 'utf8')).not.toBe(before);
  return result;
}

async function record(count: number): Promise<number[]> {
  const response = await graphql(stack.gatewayUrl, 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { sequence } }', {
    i: Array.from({ length: count }, (_, i) => ({ deviceId, latitude: i, longitude: 0, speed: 3 })),
  }, { token: member.token });
  if (!response.data) throw new Error(JSON.stringify(response.errors));
  return response.data.recordLocations.map((l: { sequence: number }) => l.sequence);
}

test('a reload while locations stream: the socket stays, a still-valid subscription misses nothing, one that no longer validates ends with an error', async () => {
  const registry = stack.gateway.subscriptions;
  const before = registry.size;
  const keeps = dashboard.subscribe('subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { sequence latitude } }', { t: tenantId, d: deviceId });
  const loses = dashboard.subscribe('subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { sequence speed } }', { t: tenantId, d: deviceId });
  while (registry.size < before + 2) await once(registry, 'changed');
  let closed = false;
  void dashboard.closed.then(() => (closed = true));

  const sent = await record(5);
  // Location.speed leaves the API (the subgraph still has it; the supergraph no longer shows it).
  expect(await reloaded(() => writeFileSync(file, supergraphWith((sdl) => sdl.replace(/\n\s*"metres\/second, >= 0"\n\s*speed: Float/, ''))))).toBe(true);
  sent.push(...(await record(5)));

  const kept = await keeps.waitFor(10, 30_000);
  expect(kept.map((r) => r.data.locationUpdated.sequence)).toEqual(sent);
  const ended = (await loses.ended()) as undefined;
  expect(ended).toBeUndefined(); // completed, not failed
  const last = loses.results.at(-1);
  expect(last?.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'query' });
  expect(loses.results.slice(0, -1).every((r) => r.data.locationUpdated.sequence <= 10)).toBe(true);
  expect(loses.completed).toBe(true);

  // Queries validate against the new supergraph at once.
  const withSpeed = await graphql(stack.gatewayUrl, 'query($d: ID!) { device(id: $d) { lastLocation { speed } } }', { d: deviceId }, { token: member.token });
  expect(codes(withSpeed)).toEqual(['BAD_USER_INPUT']);
  expect(closed).toBe(false);
});

test('a supergraph that does not build is refused and the current one stays', async () => {
  const registry = stack.gateway.subscriptions;
  const before = registry.size;
  const live = dashboard.subscribe('subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { sequence } }', { t: tenantId, d: deviceId });
  while (registry.size < before + 1) await once(registry, 'changed');
  expect(await reloaded(() => writeFileSync(file, 'this is not a supergraph'))).toBe(false);
  const sent = await record(3);
  expect((await live.waitFor(3)).map((r) => r.data.locationUpdated.sequence)).toEqual(sent);
  const response = await graphql(stack.gatewayUrl, 'query($d: ID!) { device(id: $d) { lastLocation { latitude } } }', { d: deviceId }, { token: member.token });
  expect(response.errors).toBeUndefined();
});
