import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Caller } from '../lib/caller';
import { adminSession, createTenant, graphql, memberOf, registerDevice, type Session } from '../test/support/client';
import type { TestStack } from '../test/support/stack';
import type { Platform } from './platform';

/**
 * What the benchmarks work on, made through the platform's public API as a user would (admin login,
 * createTenant, register + addTenantMember + login, registerDevice, recordLocations), with the
 * test suite's client helpers. Only the reconnect storm's thousand users are written straight into
 * the database (as the owner) and get tokens minted with cognito-local's public key.
 */
export interface QueryUser {
  session: Session;
  tenantId: string;
  /** The same user as the caller header the baselines send. */
  caller: Caller;
}

export interface Fixtures {
  admin: Session;
  /** 20 members of 4 tenants; each tenant has 7 devices with one location each. */
  queryUsers: QueryUser[];
  /** 4 members of one tenant, 10 devices each (devices of other tenants would change the query's answer). */
  ingest: { tenantId: string; clients: Array<{ token: string; deviceIds: string[] }> };
  /** One member and 50 devices of a tenant of their own, for the live rows. */
  live: { tenantId: string; token: string; deviceIds: string[] };
  /** A tenant with 10 devices and 1,000 members recorded in the database (no Cognito user). */
  storm: { tenantId: string; deviceIds: string[]; users: Array<{ userId: string; email: string }> };
}

export const QUERY_TENANTS = 4;
export const MEMBERS_PER_QUERY_TENANT = 5;
export const DEVICES_PER_QUERY_TENANT = 7;
export const INGEST_CLIENTS = 4;
export const DEVICES_PER_INGEST_CLIENT = 10;
export const LIVE_DEVICES = 50;
export const STORM_DEVICES = 10;
export const STORM_USERS = 1_000;

/**
 * The fields of TestStack that test/support/client.ts and tokens.ts read (the gateway URL, the
 * bootstrap admin, the Cognito pool), taken from the running platform.
 */
export function clientView(platform: Platform): TestStack {
  return { gatewayUrl: platform.gatewayUrl, admin: platform.admin, cognito: platform.cognito } as Partial<TestStack> as TestStack;
}

/** Runs `work` over `items`, `width` at a time (the platform is the thing under test; do not flood it while setting up). */
async function inTurns<T, R>(items: readonly T[], width: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        out[index] = await work(items[index]!, index);
      }
    }),
  );
  return out;
}

async function devicesOf(stack: TestStack, member: Session, count: number, label: string): Promise<string[]> {
  return inTurns(Array.from({ length: count }, (_, i) => i), 4, (i) => registerDevice(stack, member, `${label}-${i + 1}`));
}

export async function createFixtures(platform: Platform, log: (message: string) => void): Promise<Fixtures> {
  const stack = clientView(platform);
  const admin = await adminSession(stack);
  const run = platform.run;

  log(`fixtures: ${QUERY_TENANTS} tenants with ${MEMBERS_PER_QUERY_TENANT} members and ${DEVICES_PER_QUERY_TENANT} located devices each`);
  const queryUsers: QueryUser[] = [];
  for (let t = 0; t < QUERY_TENANTS; t++) {
    const tenantId = await createTenant(stack, admin, `Bench fleet ${run} ${t + 1}`);
    const members = await inTurns(Array.from({ length: MEMBERS_PER_QUERY_TENANT }, (_, i) => i), 4, (i) => memberOf(stack, admin, tenantId, `bench-q${t + 1}-${i + 1}`));
    const deviceIds = await devicesOf(stack, members[0]!, DEVICES_PER_QUERY_TENANT, `truck-${t + 1}`);
    const inputs = deviceIds.map((deviceId, i) => ({ deviceId, latitude: 40 + t + i / 10, longitude: 10 + i / 10 }));
    const recorded = await graphql(platform.gatewayUrl, 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id } }', { i: inputs }, { token: members[0]!.token });
    if (!recorded.data) throw new Error(`recordLocations failed: ${JSON.stringify(recorded.errors)}`);
    for (const session of members) {
      queryUsers.push({ session, tenantId, caller: { userId: session.userId, email: session.email, role: 'MEMBER', tenantId } });
    }
  }

  log(`fixtures: ingest tenant (${INGEST_CLIENTS} members, ${DEVICES_PER_INGEST_CLIENT} devices each), live tenant (${LIVE_DEVICES} devices), storm tenant`);
  const ingestTenant = await createTenant(stack, admin, `Bench ingest ${run}`);
  const ingestMembers = await inTurns(Array.from({ length: INGEST_CLIENTS }, (_, i) => i), 4, (i) => memberOf(stack, admin, ingestTenant, `bench-ingest-${i + 1}`));
  const clients: Fixtures['ingest']['clients'] = [];
  for (const [i, member] of ingestMembers.entries()) {
    clients.push({ token: member.token, deviceIds: await devicesOf(stack, member, DEVICES_PER_INGEST_CLIENT, `ingest-${i + 1}`) });
  }

  const liveTenant = await createTenant(stack, admin, `Bench live ${run}`);
  const liveMember = await memberOf(stack, admin, liveTenant, 'bench-live');
  const liveDevices = await devicesOf(stack, liveMember, LIVE_DEVICES, 'live');

  const stormTenant = await createTenant(stack, admin, `Bench storm ${run}`);
  const stormMember = await memberOf(stack, admin, stormTenant, 'bench-storm');
  const stormDevices = await devicesOf(stack, stormMember, STORM_DEVICES, 'storm');
  const users = Array.from({ length: STORM_USERS }, () => ({ userId: randomUUID(), email: `storm-${randomUUID().slice(0, 8)}@fleet.bench` }));
  const owner = new pg.Client({ connectionString: platform.ownerUrl });
  await owner.connect();
  try {
    // Recorded as registration and addTenantMember would record them, without a Cognito user each.
    await owner.query("INSERT INTO users (id, email, role) SELECT id, email, 'MEMBER' FROM unnest($1::text[], $2::text[]) AS u(id, email)", [
      users.map((u) => u.userId),
      users.map((u) => u.email),
    ]);
    await owner.query('INSERT INTO tenant_members (user_id, tenant_id) SELECT id, $2::uuid FROM unnest($1::text[]) AS u(id)', [users.map((u) => u.userId), stormTenant]);
  } finally {
    await owner.end();
  }

  return {
    admin,
    queryUsers,
    ingest: { tenantId: ingestTenant, clients },
    live: { tenantId: liveTenant, token: liveMember.token, deviceIds: liveDevices },
    storm: { tenantId: stormTenant, deviceIds: stormDevices, users },
  };
}
