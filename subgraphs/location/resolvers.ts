import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper';
import type { Caller } from '../../lib/caller';
import DataLoader from 'dataloader';
import type { Database, Sql } from '../../lib/database';
import { DateTime } from '../../lib/dateTime';
import { BadUserInput, FleetError, NotFound } from '../../lib/errors';
import { locationEventSchema, type LocationEvent } from '../../lib/locationEvent';
import { requireCaller, requireTenantMember, scopeFor } from '../../lib/scope';
import type { DeviceRateLimit } from './deviceRateLimit';
import { createDevice, listDevices, listDevicesById, type DeviceRecord } from './devices';
import { announceOutbox, storeLocations, type LocationRecord } from '../../lib/locationStore';
import type { SequenceRange } from '../../lib/locationEvent';
import { devicePositions, lastLocations, locationPage, locationsBetween, type LocationPageArgs } from './locations';
import type { OutboxRelay } from './outboxRelay';
import { acceptBatch, acceptInput, type LocationInput, type RecordingWindow } from './validation';

export interface LocationContext {
  caller: Caller | null;
  db: Database;
  rateLimit: DeviceRateLimit;
  relay: OutboxRelay;
  window: RecordingWindow;
  /** The events a `_locationEvents` selection is resolved against (sent by the gateway per batch). */
  locationEvents: unknown;
  /** Per request: what a response asks of many devices is read in one query (see `loadersFor`). */
  loaders: LocationLoaders;
}

export interface LocationLoaders {
  device: DataLoader<string, DeviceRecord | null>;
  lastLocation: DataLoader<string, LocationRecord | null>;
}

/** Batches the device and last-location reads of one request, each in the caller's scope. */
export function loadersFor(caller: Caller | null, db: Database): LocationLoaders {
  const scoped = <T>(work: (sql: Sql) => Promise<T>) => db.scoped(scopeFor(requireCaller(caller)), work);
  return {
    device: new DataLoader(async (ids) => {
      const devices = await scoped((sql) => listDevicesById(sql, ids));
      return ids.map((id) => devices.get(id) ?? null);
    }),
    lastLocation: new DataLoader(async (ids) => {
      const last = await scoped((sql) => lastLocations(sql, ids));
      return ids.map((id) => last.get(id) ?? null);
    }),
  };
}

async function record(context: LocationContext, inputs: LocationInput[], single: boolean): Promise<LocationRecord[]> {
  const member = requireTenantMember(context.caller);
  const receivedAt = new Date();
  const accepted = single ? [acceptInput(inputs[0] as LocationInput, receivedAt, context.window)] : acceptBatch(inputs, receivedAt, context.window);
  const deviceIds = accepted.map((input) => input.deviceId);
  let claimed = false;
  try {
    const records = await context.db.scoped(scopeFor(member), async (sql) => {
      const stored = await storeLocations(sql, accepted, receivedAt);
      // Claimed only for devices the caller may write to, and before commit: a refusal rolls back.
      await context.rateLimit.claim(deviceIds);
      claimed = true;
      await announceOutbox(sql);
      return stored;
    });
    context.relay.wake();
    return records;
  } catch (error) {
    if (claimed) await context.rateLimit.release(deviceIds).catch(() => undefined);
    throw error;
  }
}


/** The most locations per range `_locationsBetween` answers (the gateway's resume bound is at most this). */
const MAX_HISTORY_PAGE = 10_000;

/**
 * The events a `_locationEvents` request resolves against (sent by the gateway per batch). Each is
 * checked on its own: one the caller may not see, or that does not match the subscription's
 * arguments, becomes that item's NOT_FOUND and leaves the others alone.
 */
function subscriptionEvents(context: LocationContext, args: { tenantId: string; deviceId?: string | null }): Array<LocationEvent | FleetError> {
  const caller = requireCaller(context.caller);
  if (!Array.isArray(context.locationEvents)) throw new BadUserInput('locationEvents', 'locationUpdated is served by the gateway over graphql-ws');
  return context.locationEvents.map((raw) => {
    const parsed = locationEventSchema.safeParse(raw);
    if (!parsed.success) return new FleetError('BAD_USER_INPUT', 'not a location event', { field: 'locationEvents' });
    const event = parsed.data;
    const visible = caller.role === 'ADMIN' || caller.tenantId === event.tenantId;
    if (!visible || event.tenantId !== args.tenantId || (args.deviceId && args.deviceId !== event.deviceId)) return new NotFound('Location');
    return event;
  });
}

export const resolvers: GraphQLResolverMap<LocationContext> = {
  DateTime,
  Query: {
    device: async (_root, args: { id: string }, { loaders }) => {
      const device = await loaders.device.load(args.id);
      // Another tenant's device is answered exactly like one that does not exist.
      if (!device) throw new NotFound('Device');
      return device;
    },
    devices: async (_root, _args, { caller, db }) => {
      const known = requireCaller(caller);
      return db.scoped(scopeFor(known), (sql) => listDevices(sql));
    },
    _locationEvents: (_root, args: { tenantId: string; deviceId?: string | null }, context) => subscriptionEvents(context, args),
    _locationsBetween: async (_root, args: { tenantId: string; ranges: SequenceRange[]; limit: number }, { caller, db }) => {
      const known = requireCaller(caller);
      if (!Number.isInteger(args.limit) || args.limit < 1 || args.limit > MAX_HISTORY_PAGE) {
        throw new BadUserInput('limit', `limit must be 1 to ${MAX_HISTORY_PAGE}`);
      }
      const rows = await db.scoped(scopeFor(known), (sql) => locationsBetween(sql, args.ranges, args.limit));
      // RLS already hides other tenants from a member; an ADMIN asked about one tenant gets only it.
      return rows.filter((row) => row.tenantId === args.tenantId);
    },
    _devicePositions: async (_root, args: { tenantId: string; deviceId?: string | null }, { caller, db }) => {
      const known = requireCaller(caller);
      return db.scoped(scopeFor(known), (sql) => devicePositions(sql, args.tenantId, args.deviceId));
    },
  },
  Mutation: {
    registerDevice: async (_root, args: { name: string }, { caller, db }) => {
      const member = requireTenantMember(caller);
      const name = args.name.trim();
      if (name.length < 1 || name.length > 100) throw new BadUserInput('name', 'name must be 1 to 100 characters');
      return db.inScope(scopeFor(member), (tx) => createDevice(tx, member.tenantId, name));
    },
    recordLocation: async (_root, args: { input: LocationInput }, context) => (await record(context, [args.input], true))[0],
    recordLocations: (_root, args: { inputs: LocationInput[] }, context) => record(context, args.inputs, false),
  },
  Subscription: {
    locationUpdated: {
      subscribe: () => {
        throw new FleetError('BAD_USER_INPUT', 'Subscribe through the gateway (graphql-ws on /graphql)', { field: 'locationUpdated' });
      },
      // Never reached: the gateway resolves subscription events through `_locationEvents`.
      resolve: () => {
        throw new FleetError('BAD_USER_INPUT', 'Subscribe through the gateway (graphql-ws on /graphql)', { field: 'locationUpdated' });
      },
    },
  },
  Tenant: {
    __resolveReference: (reference: { id: string }) => reference,
    devices: async (tenant: { id: string }, _args, { caller, db }) => {
      const known = requireCaller(caller);
      return db.scoped(scopeFor(known), (sql) => listDevices(sql, tenant.id));
    },
  },
  Device: {
    // `_entities` with many devices (e.g. a tenant's) reads them in one query.
    __resolveReference: (reference: { id: string }, { loaders }: LocationContext) => loaders.device.load(reference.id),
    tenant: (device: DeviceRecord) => ({ __typename: 'Tenant', id: device.tenantId }),
    lastLocation: (device: DeviceRecord, _args, { loaders }) => loaders.lastLocation.load(device.id),
    locations: async (device: DeviceRecord, args: LocationPageArgs, { caller, db }) => {
      const known = requireCaller(caller);
      return db.scoped(scopeFor(known), (sql) => locationPage(sql, device.id, args));
    },
  },
  Location: {
    sequence: (location: LocationRecord) => Number(location.seq),
    device: async (location: LocationRecord, _args, context) => {
      const device = await context.loaders.device.load(location.deviceId);
      if (!device) throw new NotFound('Device');
      return device;
    },
  },
};
