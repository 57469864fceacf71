import { z } from 'zod';

/**
 * The Kafka message that carries one accepted location (topic `KAFKA_TOPIC`, key
 * `<tenantId>:<deviceId>`), and the Redis message the bridge fans out. Defined once here and
 * imported by the producer (location subgraph), the bridge and the gateway.
 *
 * Other producers (kcat, partner systems) may write to the topic, so the bridge validates every
 * message against this schema and moves what fails to `<topic>.dlq`.
 */

// Field ranges are the contract's (CONTRACT.md, `Location`); the GraphQL input validation reuses them.
export const LATITUDE = { min: -90, max: 90 } as const;
export const LONGITUDE = { min: -180, max: 180 } as const;
export const HEADING = { min: 0, max: 360 } as const;

const finite = () => z.number().refine(Number.isFinite, 'must be a finite number');
const optionalMeasure = (schema: z.ZodNumber) => schema.nullable().optional();

export const locationEventSchema = z.object({
  id: z.uuid(),
  tenantId: z.uuid(),
  deviceId: z.uuid(),
  /**
   * Per-device acceptance order: 1, 2, 3, ... assigned in the database transaction that accepted
   * the location. Subscribers use it to drop replays and to stay in order. Producers outside the
   * platform may omit it; their messages are then de-duplicated by `id` only.
   */
  seq: z.number().int().positive().optional(),
  latitude: finite().min(LATITUDE.min).max(LATITUDE.max),
  longitude: finite().min(LONGITUDE.min).max(LONGITUDE.max),
  accuracy: optionalMeasure(z.number().min(0)),
  speed: optionalMeasure(z.number().min(0)),
  heading: optionalMeasure(z.number().min(HEADING.min).max(HEADING.max)),
  altitude: optionalMeasure(finite()),
  recordedAt: z.iso.datetime({ offset: true }),
  receivedAt: z.iso.datetime({ offset: true }),
});

export type LocationEvent = z.infer<typeof locationEventSchema>;

export function locationEventKey(event: Pick<LocationEvent, 'tenantId' | 'deviceId'>): string {
  return `${event.tenantId}:${event.deviceId}`;
}

export type LocationEventParseResult =
  | { ok: true; event: LocationEvent }
  | { ok: false; reason: string };

/** Parses a raw Kafka message (key and value bytes) into an event, or says why it is not one. */
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
  const parsed = locationEventSchema.safeParse(json);
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
