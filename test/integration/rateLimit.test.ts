import { adminSession, codes, createTenant, graphql, memberOf, registerDevice, type Session } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';

/** The per-device minimum interval (LOCATION_MIN_INTERVAL_MS), kept in Redis for every replica. */
let stack: TestStack;
let member: Session;
const INTERVAL_MS = 60_000;

beforeAll(async () => {
  stack = await startTestStack({ minIntervalMs: INTERVAL_MS });
  const admin = await adminSession(stack);
  member = await memberOf(stack, admin, await createTenant(stack, admin));
});
afterAll(async () => {
  await stack?.stop();
});

const record = (inputs: Array<{ deviceId: string }>) =>
  graphql(stack.gatewayUrl, 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id } }', { i: inputs.map((i) => ({ ...i, latitude: 1, longitude: 1 })) }, { token: member.token });

test('a second location within the interval is RATE_LIMITED with retryAfterMs; other devices are not affected', async () => {
  const [first, second] = [await registerDevice(stack, member), await registerDevice(stack, member)];
  // A batch counts once per device: a backlog upload is one acceptance.
  expect((await record([{ deviceId: first }, { deviceId: first }])).errors).toBeUndefined();
  const limited = await record([{ deviceId: first }]);
  expect(codes(limited)).toEqual(['RATE_LIMITED']);
  const retryAfterMs = limited.errors?.[0]?.extensions?.retryAfterMs as number;
  expect(retryAfterMs).toBeGreaterThan(0);
  expect(retryAfterMs).toBeLessThanOrEqual(INTERVAL_MS);
  expect((await record([{ deviceId: second }])).errors).toBeUndefined();
});

test('a refused batch claims nothing and stores nothing: all or nothing', async () => {
  const [busy, idle] = [await registerDevice(stack, member), await registerDevice(stack, member)];
  await record([{ deviceId: busy }]);
  expect(codes(await record([{ deviceId: idle }, { deviceId: busy }]))).toEqual(['RATE_LIMITED']);
  // The idle device was not claimed by the refused batch, and has no location from it.
  const history = await graphql(stack.gatewayUrl, 'query($d: ID!) { device(id: $d) { locations { edges { node { id } } } } }', { d: idle }, { token: member.token });
  expect(history.data?.device.locations.edges).toEqual([]);
  expect((await record([{ deviceId: idle }])).errors).toBeUndefined();
});

test("another tenant cannot use up a device's interval by naming it", async () => {
  const admin = await adminSession(stack);
  const outsider = await memberOf(stack, admin, await createTenant(stack, admin));
  const device = await registerDevice(stack, member);
  const attempt = await graphql(stack.gatewayUrl, 'mutation($d: ID!) { recordLocation(input: { deviceId: $d, latitude: 1, longitude: 1 }) { id } }', { d: device }, { token: outsider.token });
  expect(codes(attempt)).toEqual(['NOT_FOUND']);
  expect((await record([{ deviceId: device }])).errors).toBeUndefined();
});
