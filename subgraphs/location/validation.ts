import { HEADING, LATITUDE, LONGITUDE } from '../../lib/locationEvent';
import { BadUserInput } from '../../lib/errors';
import type { NewLocation } from '../../lib/locationStore';

/** `LocationInput` as the API receives it (DateTime already parsed by the scalar). */
export interface LocationInput {
  deviceId: string;
  latitude: number;
  longitude: number;
  accuracy?: number | null;
  speed?: number | null;
  heading?: number | null;
  altitude?: number | null;
  recordedAt?: Date | null;
}

/** An input that passed every check: what `storeLocations` takes (its id is given there). */
export type AcceptedInput = Omit<NewLocation, 'id'>;

export interface RecordingWindow {
  /** How far ahead of the server clock `recordedAt` may be (device clocks drift). */
  maxFutureMs: number;
  /** How old `recordedAt` may be (devices upload backlogs after being offline). */
  maxAgeMs: number;
}

export const MAX_BATCH = 1000;

function range(field: string, value: number | null | undefined, min: number, max: number, index?: number): number | null {
  if (value === null || value === undefined) return null;
  if (!Number.isFinite(value) || value < min || value > max) {
    const bounds = max === Infinity ? `>= ${min}` : `between ${min} and ${max}`;
    throw new BadUserInput(field, `${field} must be ${bounds}`, index === undefined ? {} : { index });
  }
  return value;
}

/** Checks one input against the contract's ranges; throws BAD_USER_INPUT naming the field. */
export function acceptInput(input: LocationInput, receivedAt: Date, window: RecordingWindow, index?: number): AcceptedInput {
  const where = index === undefined ? {} : { index };
  const recordedAt = input.recordedAt ?? receivedAt;
  if (recordedAt.getTime() > receivedAt.getTime() + window.maxFutureMs) {
    throw new BadUserInput('recordedAt', `recordedAt may be at most ${window.maxFutureMs / 1000} s in the future`, where);
  }
  if (recordedAt.getTime() < receivedAt.getTime() - window.maxAgeMs) {
    throw new BadUserInput('recordedAt', `recordedAt may be at most ${window.maxAgeMs / 1000} s old`, where);
  }
  return {
    deviceId: input.deviceId,
    latitude: range('latitude', input.latitude, LATITUDE.min, LATITUDE.max, index) as number,
    longitude: range('longitude', input.longitude, LONGITUDE.min, LONGITUDE.max, index) as number,
    accuracy: range('accuracy', input.accuracy, 0, Infinity, index),
    speed: range('speed', input.speed, 0, Infinity, index),
    heading: range('heading', input.heading, HEADING.min, HEADING.max, index),
    altitude: range('altitude', input.altitude, -Number.MAX_VALUE, Number.MAX_VALUE, index),
    recordedAt,
  };
}

export function acceptBatch(inputs: LocationInput[], receivedAt: Date, window: RecordingWindow): AcceptedInput[] {
  if (inputs.length === 0) throw new BadUserInput('inputs', 'inputs must hold at least one location');
  if (inputs.length > MAX_BATCH) throw new BadUserInput('inputs', `at most ${MAX_BATCH} locations per call`);
  return inputs.map((input, index) => acceptInput(input, receivedAt, window, index));
}
