/**
 * What one subscription received from one device, checked as it arrives: each sequence must be
 * one above the previous one. Kept apart from the subscriber process so the check is tested alone.
 */
export interface DeviceTally {
  /** Arrivals above the previous one. */
  count: number;
  /** The first sequence counted (0 until one is). */
  first: number;
  last: number;
  /** Arrivals whose sequence was not above the last one (duplicates or out of order). */
  notAbove: number;
  /** Arrivals more than one above the last one (a location skipped). */
  gaps: number;
}

export function tallyArrival(devices: Map<string, DeviceTally>, deviceId: string, seq: number): void {
  const tally = devices.get(deviceId);
  if (!tally) {
    devices.set(deviceId, { count: 1, first: seq, last: seq, notAbove: 0, gaps: 0 });
    return;
  }
  if (seq <= tally.last) {
    tally.notAbove++;
    return;
  }
  if (seq > tally.last + 1) tally.gaps++;
  if (tally.count === 0) tally.first = seq;
  tally.last = seq;
  tally.count++;
}

/** Starts counting afresh; the last sequence stays, as what the next arrival is checked against. */
export function resetTally(tally: DeviceTally): void {
  Object.assign(tally, { count: 0, first: 0, notAbove: 0, gaps: 0 });
}
