import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { getIntrospectionQuery } from 'graphql';
import WebSocket from 'ws';
import { DEFAULT_OPERATION_LIMITS as LIMITS } from '../../gateway/operationLimits';
import { adminSession, createTenant, graphql, memberOf, recordLocation, registerDevice, type Session } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';
import { extensionsOf, runOver, type Outcome, type Transport } from '../support/transports';

/**
 * Operation limits (depth, aliases, directives, tokens, cost) on HTTP and graphql-ws alike, with the
 * gateway's default settings: hostile operations are BAD_USER_INPUT naming the limit and nothing
 * of the schema, the richest real operations still run, and an oversized socket frame closes 1009.
 */
let stack: TestStack;
let member: Session;
let tenantId: string;
let deviceId: string;

beforeAll(async () => {
  stack = await startTestStack({ bridge: false });
  const admin = await adminSession(stack);
  tenantId = await createTenant(stack, admin);
  member = await memberOf(stack, admin, tenantId);
  deviceId = await registerDevice(stack, member, 'van');
  await recordLocation(stack, member, { deviceId, latitude: 52.52, longitude: 13.4 });
});
afterAll(async () => {
  await stack?.stop();
});

/** `device { tenant { devices { tenant { … id } } } }`: `levels` selections below `device`, plus `id`. */
function nested(levels: number): string {
  let selection = 'id';
  for (let level = levels - 1; level >= 0; level--) selection = `${level % 2 === 0 ? 'tenant' : 'devices'} { ${selection} }`;
  return `query($id: ID!) { device(id: $id) { ${selection} } }`;
}

const repeat = (count: number, text: (i: number) => string) => Array.from({ length: count }, (_, i) => text(i)).join(' ');

/** Full-precision values and every field: the largest input a device app sends. */
function fullInput(i: number): Record<string, unknown> {
  return {
    deviceId,
    latitude: -89.123456789012 + (i % 100) / 1000,
    longitude: 179.123456789012 - (i % 100) / 1000,
    accuracy: 12.3456789012345,
    speed: 33.3333333333333,
    heading: 359.999999999999,
    altitude: 1234.56789012345,
    recordedAt: new Date(Date.now() - 3_600_000 + i).toISOString(),
  };
}

const inline = (input: Record<string, unknown>) =>
  `{ ${Object.entries(input).map(([name, value]) => `${name}: ${JSON.stringify(value)}`).join(', ')} }`;

function expectRefused(outcome: Outcome, limit: string, max: number): void {
  expect(outcome.data ?? null).toBeNull();
  expect(extensionsOf(outcome)).toEqual([{ code: 'BAD_USER_INPUT', field: 'query', limit, max }]);
  expect(outcome.errors?.[0]?.message).toMatch(/limit of \d+ exceeded/);
  // Nothing of the federation behind the API: no subgraph, entity or supergraph-only names.
  expect(JSON.stringify(outcome)).not.toMatch(/_entities|_service|join__|link__|representations|subgraph|Syntax Error/i);
}

describe.each<Transport>(['http', 'ws'])('over %s', (transport) => {
  const run = (query: string, variables: Record<string, unknown> = {}) => runOver(transport, stack, member.token, query, variables);

  test('a 40-level nested query is refused at depth', async () => {
    expectRefused(await run(nested(40), { id: deviceId }), 'depth', LIMITS.maxDepth);
  });

  test('500 aliases are refused', async () => {
    expectRefused(await run(`{ ${repeat(500, (i) => `a${i}: me { id }`)} }`), 'aliases', LIMITS.maxAliases);
  });

  test('a field repeated with a directive each time is refused past the directive limit', async () => {
    expectRefused(await run(`{ me { ${repeat(LIMITS.maxDirectives + 1, () => 'id @include(if: true)')} } }`), 'directives', LIMITS.maxDirectives);
  });

  test('a document past the token limit is refused before it is parsed in full', async () => {
    const items = repeat(5_000, () => `{ deviceId: "${deviceId}", latitude: 1, longitude: 1 }`); // 55,000 tokens
    expectRefused(await run(`mutation { recordLocations(inputs: [${items}]) { id } }`), 'tokens', LIMITS.maxTokens);
  });

  test('a page of 1000 locations for every device is refused by cost, whether first is inline or a variable', async () => {
    const page = (first: string) => `devices { locations(first: ${first}) { edges { node { id latitude longitude } } } }`;
    expectRefused(await run(`{ ${page('1000')} }`), 'cost', LIMITS.maxCost);
    expectRefused(await run(`query($n: Int) { ${page('$n')} }`, { n: 1000 }), 'cost', LIMITS.maxCost);
    expectRefused(await run(`{ tenants { ${page('100')} } }`), 'cost', LIMITS.maxCost);
  });

  test('the richest real query runs: devices with lastLocation, members, and a page of 1000 locations', async () => {
    const location = 'id latitude longitude accuracy speed heading altitude recordedAt receivedAt sequence';
    const outcome = await run(
      `query($t: ID!, $d: ID!) {
        tenant(id: $t) { id name createdAt members { id email role } devices { id name lastLocation { ${location} } } }
        device(id: $d) { id name locations(first: 1000) { edges { cursor node { ${location} device { id name } } } pageInfo { hasNextPage endCursor } } }
        me { id email role tenant { id name } }
      }`,
      { t: tenantId, d: deviceId },
    );
    expect(outcome.errors).toBeUndefined();
    expect(outcome.data.tenant.devices).toEqual([expect.objectContaining({ id: deviceId, lastLocation: expect.objectContaining({ latitude: expect.any(Number) }) })]);
    expect(outcome.data.device.locations.edges.length).toBeGreaterThan(0);
  });

  test('recordLocations with 1000 full inputs runs, as variables and written inline', async () => {
    const inputs = Array.from({ length: 1000 }, (_, i) => fullInput(i));
    const selection = '{ id sequence latitude longitude recordedAt receivedAt device { id name } }';
    const asVariables = await run(`mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) ${selection} }`, { i: inputs });
    expect(asVariables.errors).toBeUndefined();
    expect(asVariables.data.recordLocations).toHaveLength(1000);
    const written = `mutation { recordLocations(inputs: [${inputs.map(inline).join(' ')}]) ${selection} }`;
    const asLiteral = await run(written);
    expect(asLiteral.errors).toBeUndefined();
    expect(asLiteral.data.recordLocations).toHaveLength(1000);
  });

  test('introspection (Apollo Sandbox, codegen) is within every limit', async () => {
    const outcome = await run(getIntrospectionQuery());
    expect(outcome.errors).toBeUndefined();
    expect(outcome.data.__schema.queryType).toMatchObject({ name: 'Query' });
  });
});

test('over HTTP a refused operation is a 400', async () => {
  const response = await graphql(stack.gatewayUrl, `{ ${repeat(500, (i) => `a${i}: me { id }`)} }`, {}, { token: member.token });
  expect(response.status).toBe(400);
  const costly = await graphql(stack.gatewayUrl, '{ devices { locations(first: 1000) { edges { node { id } } } } }', {}, { token: member.token });
  expect(costly.status).toBe(400);
});

describe('graphql-ws message size', () => {
  /** A raw graphql-transport-ws connection, acknowledged (authorized) by the gateway. */
  async function openSocket(): Promise<WebSocket> {
    const socket = new WebSocket(stack.wsUrl, 'graphql-transport-ws');
    await once(socket, 'open');
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${member.token}` } }));
    const [ack] = (await once(socket, 'message')) as [Buffer];
    expect(JSON.parse(ack.toString())).toEqual({ type: 'connection_ack' });
    return socket;
  }

  test('a frame over the limit closes the socket with 1009 (Message Too Big); the gateway serves on', async () => {
    const socket = await openSocket();
    const closed = once(socket, 'close') as Promise<[number, Buffer]>;
    socket.send(JSON.stringify({ id: randomUUID(), type: 'subscribe', payload: { query: `{ me { id } } # ${'x'.repeat(LIMITS.maxSocketMessageBytes)}` } }));
    const [code] = await closed;
    expect(code).toBe(1009);
    expect((await runOver('ws', stack, member.token, '{ me { id } }')).data).toEqual({ me: { id: member.userId } });
  });

  test('the largest legitimate message, recordLocations with 1000 full inputs written inline, fits', async () => {
    const inputs = Array.from({ length: 1000 }, (_, i) => fullInput(i));
    const query = `mutation { recordLocations(inputs: [${inputs.map(inline).join(' ')}]) { id } }`;
    expect(query.length).toBeGreaterThan(250_000);
    const outcome = await runOver('ws', stack, member.token, query);
    expect(outcome.errors).toBeUndefined();
    expect(outcome.data.recordLocations).toHaveLength(1000);
  });
});

describe('with introspection off', () => {
  let closed: TestStack;
  let user: Session;

  beforeAll(async () => {
    closed = await startTestStack({ bridge: false, gateway: { introspection: false } });
    const admin = await adminSession(closed);
    user = await memberOf(closed, admin, await createTenant(closed, admin));
  });
  afterAll(async () => {
    await closed?.stop();
  });

  test.each<Transport>(['http', 'ws'])('over %s, __schema is refused and no error suggests a name', async (transport) => {
    const run = (query: string, variables: Record<string, unknown> = {}) => runOver(transport, closed, user.token, query, variables);
    const schema = await run('{ __schema { queryType { name } } }');
    // graphql-js refuses each field of an introspection type: `__schema`, then `queryType`.
    expect(extensionsOf(schema)).toEqual([{ code: 'BAD_USER_INPUT', field: '__schema' }, { code: 'BAD_USER_INPUT', field: 'queryType' }]);
    const typo = await run('{ devics { id } }');
    expect(extensionsOf(typo)).toEqual([{ code: 'BAD_USER_INPUT', field: 'devics' }]);
    const typoInVariables = await run('mutation($i: LocationInput!) { recordLocation(input: $i) { id } }', { i: { deviceId: 'd', latitude: 1, longitude: 1, recordedat: 'now' } });
    // graphql-js says which field is unknown only in its message; the error names the argument.
    expect(extensionsOf(typoInVariables)).toEqual([{ code: 'BAD_USER_INPUT', field: 'input' }]);
    expect(JSON.stringify([schema, typo, typoInVariables])).not.toMatch(/did you mean|devices"|recordedAt"/i);
  });

  test('with introspection on (the default) the same typos get their suggestions', async () => {
    const typo = await runOver('http', stack, member.token, '{ devics { id } }');
    expect(typo.errors?.[0]?.message).toMatch(/Did you mean .*"devices"/);
    const typoInVariables = await runOver('http', stack, member.token, 'mutation($i: LocationInput!) { recordLocation(input: $i) { id } }', { i: { deviceId: 'd', latitude: 1, longitude: 1, recordedat: 'now' } });
    expect(typoInVariables.errors?.[0]?.message).toMatch(/Did you mean "recordedAt"/);
  });
});
