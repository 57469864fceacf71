import { checkExactlyOnce } from '../../bench/live/delivery';
import { benchEvent, interleaved } from '../../bench/live/events';
import type { SubscribersReport } from '../../bench/live/subscribers';
import { resetTally, tallyArrival, type DeviceTally } from '../../bench/live/tally';
import { locationEventSchema } from '../../lib/locationEvent';

/**
 * The benchmark's exactly-once verdict decides whether a live row is FAILED whatever its rate, and
 * its events stand in for the bridge's: both are checked here without a platform.
 */
const D1 = '11111111-1111-4111-8111-111111111111';
const D2 = '22222222-2222-4222-8222-222222222222';
const TENANT = '33333333-3333-4333-8333-333333333333';

function report(tallies: SubscribersReport['tallies']): SubscribersReport {
  return { type: 'report', deliveries: 0, tallies, arrivals: [], errors: 0, firstError: null, closes: {}, failed: [] };
}

const expected = new Map([['s1', [{ deviceId: D1, from: 5, to: 9 }, { deviceId: D2, from: 1, to: 3 }]]]);

describe('the exactly-once verdict of the live rows', () => {
  test('every location once and in order: no violation', () => {
    const verdict = checkExactlyOnce(
      report({ s1: { [D1]: { count: 5, first: 5, last: 9, notAbove: 0, gaps: 0 }, [D2]: { count: 3, first: 1, last: 3, notAbove: 0, gaps: 0 } } }),
      expected,
    );
    expect(verdict).toEqual({ expected: 8, delivered: 8, missing: 0, notAbove: 0, gaps: 0, unexpected: 0, violations: 0 });
  });

  test('a repeat, a reordering, a skipped location and a silent subscription are each violations', () => {
    const repeated = checkExactlyOnce(report({ s1: { [D1]: { count: 5, first: 5, last: 9, notAbove: 1, gaps: 0 }, [D2]: { count: 3, first: 1, last: 3, notAbove: 0, gaps: 0 } } }), expected);
    expect(repeated.notAbove).toBe(1);
    const skipped = checkExactlyOnce(report({ s1: { [D1]: { count: 4, first: 5, last: 9, notAbove: 0, gaps: 1 }, [D2]: { count: 3, first: 1, last: 3, notAbove: 0, gaps: 0 } } }), expected);
    expect([skipped.missing, skipped.gaps]).toEqual([1, 1]);
    const silent = checkExactlyOnce(report({}), expected);
    expect([silent.delivered, silent.missing]).toEqual([0, 8]);
    for (const verdict of [repeated, skipped, silent]) expect(verdict.violations).toBeGreaterThan(0);
  });

  test('a location of another device, or for a subscription that should have had none, is unexpected', () => {
    const other = '44444444-4444-4444-8444-444444444444';
    const verdict = checkExactlyOnce(
      report({
        s1: { [D1]: { count: 5, first: 5, last: 9, notAbove: 0, gaps: 0 }, [D2]: { count: 3, first: 1, last: 3, notAbove: 0, gaps: 0 }, [other]: { count: 2, first: 1, last: 2, notAbove: 0, gaps: 0 } },
        s2: { [D1]: { count: 1, first: 5, last: 5, notAbove: 0, gaps: 0 } },
      }),
      expected,
    );
    expect(verdict.unexpected).toBe(3);
  });
});

describe("a subscriber's tally of one device", () => {
  const tally = (sequences: number[], reset?: number) => {
    const devices = new Map<string, DeviceTally>();
    sequences.forEach((seq, i) => {
      if (i === reset) resetTally(devices.get(D1)!);
      tallyArrival(devices, D1, seq);
    });
    return devices.get(D1);
  };

  test('counts consecutive sequences, and flags repeats, reorderings and skips', () => {
    expect(tally([4, 5, 6])).toEqual({ count: 3, first: 4, last: 6, notAbove: 0, gaps: 0 });
    expect(tally([4, 5, 5, 6])).toMatchObject({ count: 3, notAbove: 1 });
    expect(tally([4, 6, 5])).toMatchObject({ count: 2, last: 6, notAbove: 1, gaps: 1 });
  });

  test('after a reset it counts from the next arrival and still checks it against the last one', () => {
    expect(tally([1, 2, 3, 4], 2)).toEqual({ count: 2, first: 3, last: 4, notAbove: 0, gaps: 0 });
    expect(tally([1, 2, 4], 2)).toEqual({ count: 1, first: 4, last: 4, notAbove: 0, gaps: 1 });
  });
});

describe('the events the live rows publish', () => {
  test('are valid location events, the same for the same device and sequence, different otherwise', () => {
    const event = benchEvent(TENANT, D1, 7, Date.now());
    expect(locationEventSchema.safeParse(event).success).toBe(true);
    expect(benchEvent(TENANT, D1, 7, 0).id).toBe(event.id);
    expect(new Set([event.id, benchEvent(TENANT, D1, 8, 0).id, benchEvent(TENANT, D2, 7, 0).id]).size).toBe(3);
  });

  test('interleave devices and keep each device in sequence order', () => {
    const events = [...interleaved(TENANT, [{ deviceId: D1, from: 1, to: 3 }, { deviceId: D2, from: 10, to: 11 }], 0)];
    expect(events.map((e) => `${e.deviceId === D1 ? 'a' : 'b'}${e.seq}`)).toEqual(['a1', 'b10', 'a2', 'b11', 'a3']);
  });
});
