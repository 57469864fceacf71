import { z } from 'zod';

/**
 * The Kafka message that carries one location (topic `KAFKA_TOPIC`, key `<tenantId>:<deviceId>`),
 * and the Redis message the bridge fans out. Defined once here and imported by the producer
 * (location subgraph), the bridge and the gateway.
 *
 * Other producers (kcat, partner systems) may write to the topic, so the bridge validates every
 * message against `locationMessageSchema` and moves what fails to `<topic>.dlq`. CONTRACT.md
 * describes their value as the Location fields plus `tenantId` and `deviceId`: no `seq`. The bridge
 * does not publish such a message; it accepts it into PostgreSQL as `recordLocation` would, and the
 * outbox relay publishes it with its sequence. So every event on Redis is a `LocationEvent`, with
 * a `seq`.
 */

// Field ranges are the contract's (CONTRACT.md, `Location`); the GraphQL input validation reuses them.
export const LATITUDE = { min: -90, max: 90 } as const;
export const LONGITUDE = { min: -180, max: 180 } as const;
export const HEADING = { min: 0, max: 360 } as const;

const finite = () => z.number().refine(Number.isFinite, 'must be a finite number');
const optionalMeasure = (schema: z.ZodNumber) => schema.nullable().optional();

/**
 * Per-device acceptance order: 1, 2, 3, ... assigned in the database transaction that accepted the
 * location. Subscribers use it to drop replays and to stay in order.
 */
const seq = z.number().int().positive();

const locationFields = {
  id: z.uuid(),
  tenantId: z.uuid(),
  deviceId: z.uuid(),
  latitude: finite().min(LATITUDE.min).max(LATITUDE.max),
  longitude: finite().min(LONGITUDE.min).max(LONGITUDE.max),
  accuracy: optionalMeasure(z.number().min(0)),
  speed: optionalMeasure(z.number().min(0)),
  heading: optionalMeasure(z.number().min(HEADING.min).max(HEADING.max)),
  altitude: optionalMeasure(finite()),
  recordedAt: z.iso.datetime({ offset: true }),
  receivedAt: z.iso.datetime({ offset: true }),
};

/** An accepted location as the platform publishes it: on Kafka from the outbox relay, on Redis, to subscribers. */
export const locationEventSchema = z.object({ ...locationFields, seq });

/** A value on the Kafka topic: the platform's own messages carry `seq`; other producers' need not. */
export const locationMessageSchema = z.object({ ...locationFields, seq: seq.optional() });

export type LocationEvent = z.infer<typeof locationEventSchema>;
export type LocationMessage = z.infer<typeof locationMessageSchema>;

export function locationEventKey(event: Pick<LocationEvent, 'tenantId' | 'deviceId'>): string {
  return `${event.tenantId}:${event.deviceId}`;
}

export type LocationEventParseResult =
  | { ok: true; event: LocationMessage }
  | { ok: false; reason: string };

/** Parses a raw Kafka message (key and value bytes) into a location message, or says why it is not one. */
export function parseLocationMessage(
  key: Buffer | string | null | undefined,
  value: Buffer | string | null | undefined,
): LocationEventParseResult {
  if (value == null || value.length === 0) return { ok: false, reason: 'empty message value' };
  let json: unknown;
  try {
    json = JSON.parse(value.toString());
  } catch {
    return { ok: false, reason: 'value is not JSON' };
  }
  const parsed = locationMessageSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || '(root)';
    return { ok: false, reason: `invalid field ${field}: ${issue?.message ?? 'invalid'}` };
  }
  const expectedKey = locationEventKey(parsed.data);
  if (key == null || key.toString() !== expectedKey) {
    return { ok: false, reason: `message key must be "${expectedKey}"` };
  }
  return { ok: true, event: parsed.data };
}

/**
 * Positions in a device's sequence, as the gateway and the location subgraph exchange them (the
 * internal `_devicePositions` and `_locationsBetween` fields, and a subscription's `after`).
 */
export interface DeviceSequence {
  deviceId: string;
  /** The last sequence seen (or accepted); 0 before the first location. */
  sequence: number;
}

/** A range of one device's sequence, both ends excluded (`before` null: up to the newest). */
export interface SequenceRange {
  deviceId: string;
  after: number;
  before?: number | null;
}
