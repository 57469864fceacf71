import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { FleetApiError, createFleetClient, signIn, type FleetClient } from '../../clients/sdk/src';
import { verificationCode } from '../support/mailbox';
import { startTestStack, type TestStack } from '../support/stack';

/**
 * The SDK against the running platform over HTTP: every query and mutation of the contract, typed;
 * errors as FleetApiError with the contract's codes and fields; the README's example, run as written.
 * Devices may record once a minute here, so RATE_LIMITED is one call away.
 */
const ROOT = path.resolve(__dirname, '..', '..');
let stack: TestStack;
let admin: FleetClient;
let member: FleetClient;
let tenantId: string;
const memberLogin = { email: `sdk-${randomUUID().slice(0, 8)}@fleet.test`, password: 'member-password-1' };

async function expectApiError(call: Promise<unknown>): Promise<FleetApiError> {
  const error = await call.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(FleetApiError);
  return error as FleetApiError;
}

beforeAll(async () => {
  stack = await startTestStack({ minIntervalMs: 60_000 });
  const url = stack.gatewayUrl;
  const adminSession = await signIn({ url, ...stack.admin });
  admin = createFleetClient({ url, getToken: adminSession.getToken });
  tenantId = (await admin.createTenant('SDK Logistics')).id;
  const anonymous = createFleetClient({ url });
  await anonymous.register(memberLogin.email, memberLogin.password);
  // The code the pool emailed (the stand-in's mailbox): the owner of the address confirms it.
  await anonymous.confirmRegistration(memberLogin.email, verificationCode(memberLogin.email));
  await admin.addTenantMember(tenantId, memberLogin.email);
  const memberSession = await signIn({ url, ...memberLogin });
  member = createFleetClient({ url, getToken: memberSession.getToken });
});
afterAll(async () => {
  await stack?.stop();
});

test('every query and mutation of the contract through typed calls', async () => {
  const me = await member.me();
  expect(me).toMatchObject({ email: memberLogin.email, role: 'MEMBER', tenant: { id: tenantId, name: 'SDK Logistics' } });
  expect(await member.tenants()).toEqual([expect.objectContaining({ id: tenantId, name: 'SDK Logistics' })]);

  const truck = await member.registerDevice('truck-1');
  expect(truck).toEqual({ id: expect.any(String), name: 'truck-1', lastLocation: null });
  const van = await member.registerDevice('van-1');
  const first = await member.recordLocation({ deviceId: truck.id, latitude: 52.52, longitude: 13.405, speed: 12.5, heading: 90 });
  expect(first).toMatchObject({ sequence: 1, latitude: 52.52, longitude: 13.405, speed: 12.5, heading: 90, accuracy: null, device: { id: truck.id } });
  const batch = await member.recordLocations([
    { deviceId: van.id, latitude: 48.85, longitude: 2.35, recordedAt: new Date(Date.now() - 20_000).toISOString() },
    { deviceId: van.id, latitude: 48.86, longitude: 2.36, recordedAt: new Date(Date.now() - 10_000).toISOString() },
  ]);
  expect(batch.map((l) => l.sequence)).toEqual([1, 2]);

  const tenant = await admin.tenant(tenantId);
  expect(tenant?.members.map((m) => m.email)).toEqual([memberLogin.email]);
  expect(tenant?.devices.map((d) => d.name).sort()).toEqual(['truck-1', 'van-1']);
  expect((await member.devices()).map((d) => [d.name, d.tenant.id, d.lastLocation?.sequence]).sort()).toEqual([
    ['truck-1', tenantId, 1],
    ['van-1', tenantId, 2],
  ]);
  expect(await member.device(truck.id)).toMatchObject({ name: 'truck-1', tenant: { id: tenantId }, lastLocation: { id: first.id } });
  const history = await member.deviceLocations({ id: van.id, first: 1 });
  expect(history?.edges.map((e) => e.node.sequence)).toEqual([2]);
  const rest = await member.deviceLocations({ id: van.id, first: 1, after: history?.pageInfo.endCursor });
  expect(rest?.edges.map((e) => e.node.sequence)).toEqual([1]);
  expect(rest?.pageInfo.hasNextPage).toBe(false);

  const anonymous = createFleetClient({ url: stack.gatewayUrl });
  const session = await anonymous.login(memberLogin.email, memberLogin.password);
  expect(session).toMatchObject({ idToken: expect.any(String), expiresIn: expect.any(Number), user: { email: memberLogin.email, tenant: { id: tenantId } } });
  const refreshed = await anonymous.refreshSession(session.refreshToken as string);
  expect(refreshed.user.id).toBe(session.user.id);
});

test('registration is confirmed with the mailed code; a wrong code is BAD_USER_INPUT on `code`', async () => {
  const anonymous = createFleetClient({ url: stack.gatewayUrl });
  const email = `confirm-${randomUUID().slice(0, 8)}@fleet.test`;
  const registered = await anonymous.register(email, 'member-password-1');
  expect(registered).toMatchObject({ email, role: 'MEMBER' });
  expect(await anonymous.resendConfirmationCode(email)).toBe(true);
  expect(await expectApiError(anonymous.confirmRegistration(email, '000000'))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'code' });
  expect(await anonymous.confirmRegistration(email, verificationCode(email))).toEqual(registered);
  expect(await anonymous.resendConfirmationCode(`nobody-${randomUUID()}@fleet.test`)).toBe(true);
});

test('errors are FleetApiErrors with the contract codes and their fields', async () => {
  const device = await member.registerDevice('errors-1');
  const anonymous = createFleetClient({ url: stack.gatewayUrl });
  expect(await expectApiError(anonymous.devices())).toMatchObject({ code: 'UNAUTHENTICATED' });
  const forged = createFleetClient({ url: stack.gatewayUrl, getToken: () => 'not-a-token' });
  expect(await expectApiError(forged.devices())).toMatchObject({ code: 'UNAUTHENTICATED', status: 401 });
  expect(await expectApiError(member.createTenant('nope'))).toMatchObject({ code: 'FORBIDDEN' });
  expect(await expectApiError(member.device(randomUUID()))).toMatchObject({ code: 'NOT_FOUND' });
  expect(await expectApiError(member.recordLocation({ deviceId: device.id, latitude: 91, longitude: 0 }))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'latitude' });
  const batch = [0, 1, 2].map((i) => ({ deviceId: device.id, latitude: 1, longitude: 1, speed: i === 2 ? -1 : 1 }));
  expect(await expectApiError(member.recordLocations(batch))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'speed', index: 2 });

  await member.recordLocation({ deviceId: device.id, latitude: 1, longitude: 1 });
  const limited = await expectApiError(member.recordLocation({ deviceId: device.id, latitude: 1, longitude: 2 }));
  expect(limited.code).toBe('RATE_LIMITED');
  expect(limited.retryAfterMs).toBeGreaterThan(0);
  expect(limited.retryAfterMs).toBeLessThanOrEqual(60_000);
  // Nothing internal on the way: the message is the API's, the error list is the API's.
  expect(JSON.stringify(limited.errors)).not.toMatch(/stack|at \//);
});

test("the README's SDK example runs as written against the platform", async () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const example = /<!-- sdk-example[^>]*-->\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(example).toBeDefined();
  const devices = await Promise.all(['example-1', 'example-2', 'example-3'].map((name) => member.registerDevice(name)));
  // At the repository root, as the README says (its import is relative to it).
  const file = path.join(ROOT, `.sdk-example-${randomUUID().slice(0, 8)}.mts`);
  writeFileSync(file, example as string);
  try {
    const before = stack.gateway.subscriptions.size;
    // The README's command: `npx tsx example.mts`.
    const running = promisify(execFile)('npx', ['tsx', path.basename(file)], {
      cwd: ROOT,
      env: { ...process.env, FLEET_URL: stack.gatewayUrl, ...{ FLEET_EMAIL: memberLogin.email, FLEET_PASSWORD: memberLogin.password } },
      timeout: 60_000,
    });
    while (stack.gateway.subscriptions.size <= before) await once(stack.gateway.subscriptions, 'changed');
    // One call names each device once: one acceptance per device under the per-minute limit.
    await member.recordLocations(devices.map((d, i) => ({ deviceId: d.id, latitude: 10 + i, longitude: 20 + i })));
    const { stdout } = await running;
    expect(stdout.trim().split('\n').sort()).toEqual(['example-1 #1 10,20', 'example-2 #1 11,21', 'example-3 #1 12,22']);
  } finally {
    rmSync(file, { force: true });
  }
});
