import { FleetError } from '../../lib/errors';
import { parseLocationMessage } from '../../lib/locationEvent';
import { acceptBatch, acceptInput, MAX_BATCH } from '../../subgraphs/location/validation';

const now = new Date('2026-11-26T10:00:00.000Z');
const window = { maxFutureMs: 5 * 60_000, maxAgeMs: 7 * 24 * 3_600_000 };
const base = { deviceId: 'd', latitude: 10, longitude: 20 };

function fieldOf(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error instanceof FleetError ? [error.code, error.extensions.field, error.extensions.index] : error;
  }
  return 'accepted';
}

describe('LocationInput validation', () => {
  test('accepts the edges of every range and defaults recordedAt to receivedAt', () => {
    const accepted = acceptInput({ ...base, latitude: -90, longitude: 180, heading: 360, accuracy: 0, speed: 0, altitude: -400 }, now, window);
    expect(accepted).toMatchObject({ latitude: -90, longitude: 180, heading: 360, recordedAt: now, accuracy: 0 });
    expect(acceptInput({ ...base, recordedAt: new Date(now.getTime() + window.maxFutureMs) }, now, window).recordedAt.getTime()).toBe(now.getTime() + window.maxFutureMs);
  });

  test.each([
    ['latitude', { latitude: 90.000001 }],
    ['longitude', { longitude: -180.1 }],
    ['heading', { heading: -0.1 }],
    ['accuracy', { accuracy: -1 }],
    ['speed', { speed: Number.NaN }],
    ['altitude', { altitude: Number.POSITIVE_INFINITY }],
    ['recordedAt', { recordedAt: new Date(now.getTime() + window.maxFutureMs + 1) }],
    ['recordedAt', { recordedAt: new Date(now.getTime() - window.maxAgeMs - 1) }],
  ])('names %s when it is out of range', (field, override) => {
    expect(fieldOf(() => acceptInput({ ...base, ...override }, now, window))).toEqual(['BAD_USER_INPUT', field, undefined]);
  });

  test('a batch names the index of its first bad item, and is bounded', () => {
    expect(fieldOf(() => acceptBatch([base, base, { ...base, latitude: 91 }], now, window))).toEqual(['BAD_USER_INPUT', 'latitude', 2]);
    expect(fieldOf(() => acceptBatch([], now, window))).toEqual(['BAD_USER_INPUT', 'inputs', undefined]);
    expect(fieldOf(() => acceptBatch(Array.from({ length: MAX_BATCH + 1 }, () => base), now, window))).toEqual(['BAD_USER_INPUT', 'inputs', undefined]);
    expect(acceptBatch(Array.from({ length: MAX_BATCH }, () => base), now, window)).toHaveLength(MAX_BATCH);
  });
});

describe('Kafka location messages', () => {
  const tenantId = '7b0c6a64-1b8e-4b55-9c2c-6a2f5c0f6f11';
  const deviceId = '0d3c3f7e-2a4b-4d5e-8f9a-0b1c2d3e4f50';
  const event = { id: 'b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e', tenantId, deviceId, seq: 3, latitude: 1, longitude: 2, recordedAt: now.toISOString(), receivedAt: now.toISOString() };

  test('a valid message with the right key parses', () => {
    expect(parseLocationMessage(`${tenantId}:${deviceId}`, JSON.stringify(event))).toEqual({ ok: true, event });
  });

  test.each([
    ['not JSON', `${tenantId}:${deviceId}`, '{', /JSON/],
    ['out of range', `${tenantId}:${deviceId}`, JSON.stringify({ ...event, latitude: 91 }), /latitude/],
    ['missing field', `${tenantId}:${deviceId}`, JSON.stringify({ ...event, recordedAt: undefined }), /recordedAt/],
    ['bad tenant id', `x:${deviceId}`, JSON.stringify({ ...event, tenantId: 'x' }), /tenantId/],
    ['wrong key', 'a:b', JSON.stringify(event), /key/],
    ['empty', `${tenantId}:${deviceId}`, '', /empty/],
  ])('%s is refused with a reason', (_name, key, value, reason) => {
    const parsed = parseLocationMessage(key, value);
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? '' : parsed.reason).toMatch(reason);
  });
});
