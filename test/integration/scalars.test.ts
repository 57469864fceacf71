import { adminSession, createTenant, graphql, memberOf, registerDevice, type Session } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';
import { extensionsOf, runOver, type Outcome, type Transport } from '../support/transports';

/**
 * Input errors at the edge: a DateTime that is not one is refused by the gateway itself (never a
 * subgraph's 400 turned INTERNAL_SERVER_ERROR), and every parse, validation and variable error
 * is BAD_USER_INPUT naming the input field the client wrote, over HTTP and graphql-ws alike.
 */
let stack: TestStack;
let member: Session;
let deviceId: string;
/** Only ever sent bad input: it must end the suite without a location. */
let untouched: string;

beforeAll(async () => {
  stack = await startTestStack({ bridge: false });
  const admin = await adminSession(stack);
  member = await memberOf(stack, admin, await createTenant(stack, admin));
  deviceId = await registerDevice(stack, member, 'scooter');
  untouched = await registerDevice(stack, member, 'spare');
});
afterAll(async () => {
  await stack?.stop();
});

const RECORD = 'mutation($i: LocationInput!) { recordLocation(input: $i) { id recordedAt } }';
const RECORD_MANY = 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id } }';
const inline = (input: Record<string, unknown>) =>
  `{ ${Object.entries(input).map(([name, value]) => `${name}: ${JSON.stringify(value)}`).join(', ')} }`;
const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
const batch = (badAt: number, recordedAt: unknown) =>
  Array.from({ length: 5 }, (_, i) => ({ deviceId: untouched, latitude: i, longitude: 0, recordedAt: i === badAt ? recordedAt : at(10 - i) }));

function expectInputError(outcome: Outcome, extensions: Record<string, unknown>): void {
  expect(outcome.data ?? null).toBeNull();
  expect(extensionsOf(outcome)).toEqual([{ code: 'BAD_USER_INPUT', ...extensions }]);
  expect(JSON.stringify(outcome)).not.toMatch(/_entities|representations|_Any|join__|subgraph|stacktrace/i);
}

describe.each<Transport>(['http', 'ws'])('over %s', (transport) => {
  const run = (query: string, variables: Record<string, unknown> = {}) => runOver(transport, stack, member.token, query, variables);

  test.each([
    ['not a date', 'yesterday'],
    ['no timezone', '2026-01-01T10:00:00'],
    ['not a string', 1_700_000_000],
  ])('recordedAt %s in a variable is BAD_USER_INPUT naming recordedAt', async (_case, recordedAt) => {
    const outcome = await run(RECORD, { i: { deviceId: untouched, latitude: 1, longitude: 2, recordedAt } });
    expectInputError(outcome, { field: 'recordedAt' });
    expect(outcome.errors?.[0]?.message).toMatch(/ISO-8601|DateTime/);
  });

  test('recordedAt written inline that is not a date is BAD_USER_INPUT naming recordedAt', async () => {
    expectInputError(await run(`mutation { recordLocation(input: ${inline({ deviceId: untouched, latitude: 1, longitude: 2, recordedAt: 'yesterday' })}) { id } }`), { field: 'recordedAt' });
    expectInputError(await run(`mutation { recordLocation(input: { deviceId: "${untouched}", latitude: 1, longitude: 2, recordedAt: 42 }) { id } }`), { field: 'recordedAt' });
  });

  test('recordLocations: a bad recordedAt in item 3 names recordedAt and index 3, as a variable and inline', async () => {
    expectInputError(await run(RECORD_MANY, { i: batch(3, 'soon') }), { field: 'recordedAt', index: 3 });
    const written = `mutation { recordLocations(inputs: [${batch(3, 'soon').map(inline).join(' ')}]) { id } }`;
    expectInputError(await run(written), { field: 'recordedAt', index: 3 });
  });

  test('a recordedAt passed as its own variable inside an inline list names the field and the item', async () => {
    const items = [0, 1, 2, 3].map((i) => `{ deviceId: "${untouched}", latitude: ${i}, longitude: 0, recordedAt: ${i === 2 ? '$t' : JSON.stringify(at(5))} }`);
    expectInputError(await run(`mutation($t: DateTime) { recordLocations(inputs: [${items.join(' ')}]) { id } }`, { t: 'later' }), { field: 'recordedAt', index: 2 });
  });

  test('history bounds that are not dates name from/to', async () => {
    expectInputError(await run(`query($d: ID!) { device(id: $d) { locations(from: "last week") { edges { cursor } } } }`, { d: deviceId }), { field: 'from' });
    expectInputError(await run(`query($d: ID!, $to: DateTime) { device(id: $d) { locations(to: $to) { edges { cursor } } } }`, { d: deviceId, to: 'now' }), { field: 'to' });
  });

  test('valid DateTimes still pass through unchanged', async () => {
    const recordedAt = at(3).replace('Z', '+00:00');
    const outcome = await run(RECORD, { i: { deviceId, latitude: 1, longitude: 2, recordedAt } });
    expect(outcome.errors).toBeUndefined();
    expect(outcome.data.recordLocation.recordedAt).toBe(new Date(recordedAt).toISOString());
    const history = await run(`query($d: ID!) { device(id: $d) { locations(from: "${at(60)}", first: 5) { edges { node { recordedAt } } } } }`, { d: deviceId });
    expect(history.errors).toBeUndefined();
  });

  test('parse and validation errors name the query, argument, input field or field they are about', async () => {
    expectInputError(await run('{ me { id '), { field: 'query' });
    expectInputError(await run('{ me { nope } }'), { field: 'nope' });
    expectInputError(await run(`{ device(id: "${deviceId}", idd: "x") { id } }`), { field: 'idd' });
    expectInputError(await run(`mutation { recordLocation(input: { deviceId: "${untouched}", latitude: "north", longitude: 2 }) { id } }`), { field: 'latitude' });
    expectInputError(await run(`mutation { recordLocations(inputs: [{ deviceId: "${untouched}", latitude: 1, longitude: 2 }, { deviceId: "${untouched}", latitude: 1, longitude: "east" }]) { id } }`), { field: 'longitude', index: 1 });
    expectInputError(await run(RECORD), { field: 'input' }); // $i missing: named where it is used
    expectInputError(await run(RECORD_MANY, { i: [{ deviceId: untouched, latitude: 1, longitude: 2 }, { deviceId: untouched, latitude: 'x', longitude: 2 }] }), { field: 'latitude', index: 1 });
    expectInputError(await run('query($d: ID!) { device(id: $d) { locations(first: $f) { edges { cursor } } } }', { d: deviceId }), { field: 'first' }); // $f undefined
  });
});

test('nothing sent with a bad input was recorded', async () => {
  const response = await graphql(stack.gatewayUrl, 'query($d: ID!) { device(id: $d) { lastLocation { id } } }', { d: untouched }, { token: member.token });
  expect(response.data).toEqual({ device: { lastLocation: null } });
});

test('over HTTP an input error is a 400', async () => {
  const response = await graphql(stack.gatewayUrl, RECORD, { i: { deviceId: untouched, latitude: 1, longitude: 2, recordedAt: 'yesterday' } }, { token: member.token });
  expect(response.status).toBe(400);
});
