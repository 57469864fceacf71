import { statement, type Database } from '../lib/database';
import { isUuid } from '../lib/ids';
import type { LocationMessage } from '../lib/locationEvent';
import { announceOutbox, storeLocations, type NewLocation } from '../lib/locationStore';
import type { AcceptOutcome, LocationAcceptor } from './locationBridge';

/** Reason prefixes, matched by `deadLetterReasonClass` (metrics.ts). */
export const UNKNOWN_DEVICE = 'unknown device';
export const ID_CONFLICT = 'id conflict';

/**
 * Accepts the locations other producers put on the topic without a `seq`, as `recordLocation`
 * does: in one transaction, each device's row is locked while its counter advances, the location
 * is stored with its next sequence, an outbox row is written and the relays are notified. The
 * bridge does not publish them itself: the outbox relay does, with their sequence, so ordering and
 * exactly-once delivery stay the platform's, whoever produced the location.
 *
 * The producer's `id` is kept, so a replay of its message (the bridge restarted, the producer
 * retried) is recognised and stored once. `receivedAt` becomes the time the bridge accepted it, as
 * for `recordLocation`. The bridge acts for no user ('system' scope), so it checks itself that the
 * device belongs to the message's tenant (RLS would not stop it in that scope).
 */
const DEVICE_TENANTS = statement<{ id: string; tenantId: string }>`
  SELECT id, tenant_id AS "tenantId" FROM devices WHERE id = ANY($1::uuid[])`;

const STORED_LOCATIONS = statement<{ id: string; deviceId: string }>`
  SELECT id, device_id AS "deviceId" FROM locations WHERE id = ANY($1::uuid[])`;

export class PostgresLocationAcceptor implements LocationAcceptor {
  constructor(private readonly db: Database) {}

  async accept(locations: readonly LocationMessage[]): Promise<AcceptOutcome> {
    const receivedAt = new Date();
    return this.db.scoped({ kind: 'system' }, async (sql) => {
      // The message schema checked that both are uuids; the filter keeps the statements' casts safe.
      const devices = await sql.rows(DEVICE_TENANTS, [[...new Set(locations.map((l) => l.deviceId).filter(isUuid))]]);
      const tenantOf = new Map(devices.map((device) => [device.id, device.tenantId]));
      const stored = await sql.rows(STORED_LOCATIONS, [[...new Set(locations.map((l) => l.id).filter(isUuid))]]);
      const deviceOf = new Map(stored.map((location) => [location.id, location.deviceId]));

      const outcome: AcceptOutcome = { stored: 0, replayed: 0, refused: [] };
      const fresh: NewLocation[] = [];
      locations.forEach((location, index) => {
        if (tenantOf.get(location.deviceId) !== location.tenantId) {
          outcome.refused.push({ index, reason: `${UNKNOWN_DEVICE}: ${location.deviceId} is not a device of tenant ${location.tenantId}` });
          return;
        }
        const storedFor = deviceOf.get(location.id);
        if (storedFor === location.deviceId) {
          outcome.replayed += 1;
        } else if (storedFor !== undefined) {
          outcome.refused.push({ index, reason: `${ID_CONFLICT}: location ${location.id} was already accepted for another device` });
        } else {
          deviceOf.set(location.id, location.deviceId); // a repeat later in this call is a replay
          fresh.push(newLocation(location));
        }
      });
      if (fresh.length > 0) {
        await storeLocations(sql, fresh, receivedAt);
        await announceOutbox(sql);
      }
      outcome.stored = fresh.length;
      return outcome;
    });
  }
}

function newLocation(location: LocationMessage): NewLocation {
  return {
    id: location.id,
    deviceId: location.deviceId,
    latitude: location.latitude,
    longitude: location.longitude,
    accuracy: location.accuracy ?? null,
    speed: location.speed ?? null,
    heading: location.heading ?? null,
    altitude: location.altitude ?? null,
    recordedAt: new Date(location.recordedAt),
  };
}
