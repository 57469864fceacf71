import { randomUUID } from 'node:crypto';
import type { LocationEvent, LocationMessage } from '../../lib/locationEvent';
import {
  BridgeDeliveryError,
  LocationBridge,
  type AcceptOutcome,
  type DeadLetter,
  type LocationAcceptor,
  type DeadLetterSink,
  type LocationPublisher,
  type PartitionBatch,
  type RawMessage,
  type RunControl,
} from '../../bridge/locationBridge';
import { deadLetterReasonClass } from '../../bridge/metrics';

const tenantId = randomUUID();
const devices = [randomUUID(), randomUUID()];

function location(deviceId: string, seq: number, overrides: Record<string, unknown> = {}) {
  const now = new Date().toISOString();
  return { id: randomUUID(), tenantId, deviceId, seq, latitude: 52.5, longitude: 13.4, recordedAt: now, receivedAt: now, ...overrides };
}

let nextOffset = 0;
function message(key: string | null, value: unknown, headers: RawMessage['headers'] = {}): RawMessage {
  const raw = typeof value === 'string' ? value : JSON.stringify(value);
  return { key, value: Buffer.from(raw), headers, offset: String(nextOffset++) };
}
const good = (deviceId: string, seq: number) => message(`${tenantId}:${deviceId}`, location(deviceId, seq));

function batchOf(messages: RawMessage[]): PartitionBatch {
  return { topic: 'locations', partition: 3, messages };
}

/** Records what was published; can be told to fail the next n calls. */
class FakePublisher implements LocationPublisher {
  readonly published: LocationEvent[] = [];
  calls = 0;
  failNext = 0;
  async publish(events: readonly LocationEvent[]): Promise<void> {
    this.calls += 1;
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error('Stream isn\'t writeable and enableOfflineQueue options is false');
    }
    this.published.push(...events);
  }
}

/** PostgreSQL stand-in: knows some devices, remembers stored ids (a replay stores nothing), can fail. */
class FakeAcceptor implements LocationAcceptor {
  readonly stored: LocationMessage[] = [];
  readonly knownDevices = new Set<string>(devices);
  failNext = 0;
  async accept(locations: readonly LocationMessage[]): Promise<AcceptOutcome> {
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error('Connection terminated unexpectedly');
    }
    const outcome: AcceptOutcome = { stored: 0, replayed: 0, refused: [] };
    locations.forEach((location, index) => {
      if (!this.knownDevices.has(location.deviceId)) outcome.refused.push({ index, reason: `unknown device: ${location.deviceId} is not a device of tenant ${location.tenantId}` });
      else if (this.stored.some((s) => s.id === location.id)) outcome.replayed += 1;
      else {
        this.stored.push(location);
        outcome.stored += 1;
      }
    });
    return outcome;
  }
}

class FakeDeadLetters implements DeadLetterSink {
  readonly letters: DeadLetter[] = [];
  failNext = 0;
  async send(letters: readonly DeadLetter[]): Promise<void> {
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error('broker unavailable');
    }
    this.letters.push(...letters);
  }
}

function setup() {
  const publisher = new FakePublisher();
  const acceptor = new FakeAcceptor();
  const deadLetters = new FakeDeadLetters();
  const failures: number[] = [];
  const bridge = new LocationBridge({ publisher, acceptor, deadLetters, observer: { failed: (_error, attempt) => failures.push(attempt) } });
  return { publisher, acceptor, deadLetters, bridge, failures };
}

/** A location as another producer writes it: the contract's fields, no `seq`. */
function unsequenced(deviceId: string) {
  const { seq: _seq, ...value } = location(deviceId, 0);
  return message(`${tenantId}:${deviceId}`, value);
}
const idOf = (m: RawMessage) => (JSON.parse(m.value!.toString()) as { id: string }).id;

/** A RunControl that records resolved offsets and waits, and checks the publish-before-resolve rule. */
function control(publisher: FakePublisher, deadLetters: FakeDeadLetters, batch: PartitionBatch, extra: Partial<RunControl> = {}, acceptor?: FakeAcceptor) {
  const resolved: string[] = [];
  const waits: number[] = [];
  const handled = () =>
    new Set([...publisher.published.map((e) => e.id), ...(acceptor?.stored.map((l) => l.id) ?? []), ...deadLetters.letters.map((l) => l.source.offset)]);
  const ctl: RunControl = {
    isActive: () => true,
    resolve: (offset) => {
      // Everything up to and including `offset` must already be published or dead-lettered.
      const done = handled();
      for (const m of batch.messages) {
        if (BigInt(m.offset) > BigInt(offset)) break;
        const id = (() => {
          try {
            return (JSON.parse(m.value!.toString()) as { id?: string }).id;
          } catch {
            return undefined;
          }
        })();
        expect(done.has(m.offset) || (id !== undefined && done.has(id))).toBe(true);
      }
      resolved.push(offset);
    },
    wait: async (ms) => {
      waits.push(ms);
    },
    ...extra,
  };
  return { ctl, resolved, waits };
}

describe('LocationBridge.process', () => {
  it('publishes valid messages in offset order and dead-letters the invalid ones with their reason', async () => {
    const { publisher, deadLetters, bridge } = setup();
    const [a, b] = devices as [string, string];
    const messages = [
      good(a, 1),
      message(`${tenantId}:${b}`, 'not json {'),
      good(b, 1),
      message(`${tenantId}:${a}`, location(a, 2, { latitude: 91 }), { trace: 'abc' }),
      good(a, 2),
      message(`${tenantId}:${randomUUID()}`, location(b, 2)),
      message(null, ''),
      good(b, 2),
    ];
    const outcome = await bridge.process(batchOf(messages));

    expect(outcome).toEqual({ resolvedOffset: messages[7]!.offset, published: 4, accepted: 0, deadLettered: 4 });
    expect(publisher.published.map((e) => `${e.deviceId === a ? 'a' : 'b'}${e.seq}`)).toEqual(['a1', 'b1', 'a2', 'b2']);
    expect(deadLetters.letters.map((l) => [l.source.offset, deadLetterReasonClass(l.reason)])).toEqual([
      [messages[1]!.offset, 'not_json'],
      [messages[3]!.offset, 'invalid_field'],
      [messages[5]!.offset, 'wrong_key'],
      [messages[6]!.offset, 'empty'],
    ]);
    const outOfRange = deadLetters.letters[1]!;
    expect(outOfRange.reason).toMatch(/latitude/);
    expect(outOfRange.headers).toEqual({ trace: 'abc' });
    expect(outOfRange.value).toBe(messages[3]!.value);
    expect(outOfRange.source).toEqual({ topic: 'locations', partition: 3, offset: messages[3]!.offset });
  });

  it('publishes the validated event, not the raw JSON', async () => {
    const { publisher, bridge } = setup();
    const event = location(devices[0]!, 7, { extra: 'dropped' });
    await bridge.process(batchOf([message(`${tenantId}:${devices[0]}`, event)]));
    expect(publisher.published[0]).not.toHaveProperty('extra');
    expect(publisher.published[0]).toMatchObject({ id: event.id, seq: 7 });
  });

  it('resolves nothing when the publisher fails, even if the dead letters went through', async () => {
    const { publisher, deadLetters, bridge } = setup();
    publisher.failNext = 1;
    const batch = batchOf([good(devices[0]!, 1), message('k', 'nope')]);
    const error = await bridge.process(batch).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BridgeDeliveryError);
    expect((error as BridgeDeliveryError).message).toMatch(/publish to Redis/);
    expect((error as BridgeDeliveryError).source.firstOffset).toBe(batch.messages[0]!.offset);
    expect(deadLetters.letters).toHaveLength(1);
  });

  it('hands locations without a seq to the acceptor, never to Redis, and dead-letters what it refuses', async () => {
    const { publisher, acceptor, deadLetters, bridge } = setup();
    const [a, b] = devices as [string, string];
    const stranger = randomUUID();
    const messages = [good(a, 1), unsequenced(a), message('k', 'nope'), unsequenced(stranger), good(b, 1), unsequenced(b)];
    const outcome = await bridge.process(batchOf(messages));

    expect(outcome).toEqual({ resolvedOffset: messages[5]!.offset, published: 2, accepted: 2, deadLettered: 2 });
    expect(publisher.published.map((e) => e.id)).toEqual([idOf(messages[0]!), idOf(messages[4]!)]);
    expect(acceptor.stored.map((l) => l.id)).toEqual([idOf(messages[1]!), idOf(messages[5]!)]);
    // In offset order, each with its reason: the invalid message and the refused location.
    expect(deadLetters.letters.map((l) => [l.source.offset, deadLetterReasonClass(l.reason)])).toEqual([
      [messages[2]!.offset, 'not_json'],
      [messages[3]!.offset, 'unknown_device'],
    ]);
    expect(deadLetters.letters[1]!.reason).toContain(stranger);
    expect(deadLetters.letters[1]!.value).toBe(messages[3]!.value);
  });

  it('resolves nothing, publishes nothing and dead-letters nothing when the acceptor fails', async () => {
    const { publisher, acceptor, deadLetters, bridge } = setup();
    acceptor.failNext = 1;
    const batch = batchOf([good(devices[0]!, 1), unsequenced(devices[0]!), message('k', 'nope')]);
    const error = await bridge.process(batch).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BridgeDeliveryError);
    expect((error as BridgeDeliveryError).message).toMatch(/PostgreSQL/);
    expect([publisher.calls, acceptor.stored.length, deadLetters.letters.length]).toEqual([0, 0, 0]);
  });

  it('resolves nothing when the dead-letter sink fails', async () => {
    const { deadLetters, bridge } = setup();
    deadLetters.failNext = 1;
    await expect(bridge.process(batchOf([good(devices[0]!, 1), message('k', 'nope')]))).rejects.toThrow(/dead-letter/);
  });

  it('answers an empty batch with nothing to resolve', async () => {
    const { publisher, bridge } = setup();
    expect(await bridge.process(batchOf([]))).toEqual({ resolvedOffset: null, published: 0, accepted: 0, deadLettered: 0 });
    expect(publisher.calls).toBe(0);
  });
});

describe('LocationBridge.run', () => {
  it('resolves chunk by chunk, never past an unpublished message', async () => {
    const { publisher, deadLetters, bridge } = setup();
    const batch = batchOf(Array.from({ length: 10 }, (_, i) => (i % 4 === 3 ? message('bad', '{}') : good(devices[i % 2]!, i + 1))));
    const { ctl, resolved } = control(publisher, deadLetters, batch, { chunkSize: 3 });
    const outcome = await bridge.run(batch, ctl);
    expect(resolved).toEqual([2, 5, 8, 9].map((i) => batch.messages[i]!.offset));
    expect(outcome).toMatchObject({ completed: true, published: 8, deadLettered: 2, attempts: 4 });
  });

  it('retries a failed chunk with growing jittered waits and then carries on in order', async () => {
    const { publisher, deadLetters, bridge, failures } = setup();
    const batch = batchOf(Array.from({ length: 6 }, (_, i) => good(devices[0]!, i + 1)));
    let heartbeats = 0;
    const { ctl, resolved, waits } = control(publisher, deadLetters, batch, {
      chunkSize: 2,
      backoff: { initialMs: 100, maxMs: 1_000, random: () => 1 },
      heartbeat: async () => {
        heartbeats += 1;
      },
    });
    let calls = 0;
    const publish = publisher.publish.bind(publisher);
    publisher.publish = async (events) => {
      calls += 1;
      // The second chunk fails four times (Redis down), then goes through.
      if (calls >= 2 && calls <= 5) throw new Error('Connection is closed.');
      return publish(events);
    };
    const outcome = await bridge.run(batch, ctl);
    expect(waits).toEqual([100, 200, 400, 800]);
    expect(failures).toEqual([1, 2, 3, 4]);
    expect(heartbeats).toBe(4);
    expect(resolved).toEqual([1, 3, 5].map((i) => batch.messages[i]!.offset));
    expect(publisher.published.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(outcome).toMatchObject({ completed: true, attempts: 7 });
  });

  it('retries a chunk whose acceptor failed; what it stored before the failure is recognised, not stored twice', async () => {
    const { publisher, acceptor, deadLetters, bridge } = setup();
    const batch = batchOf([unsequenced(devices[0]!), good(devices[1]!, 1), unsequenced(devices[1]!)]);
    const { ctl, resolved } = control(publisher, deadLetters, batch, {}, acceptor);
    // The first attempt commits in PostgreSQL, then Redis refuses: the chunk is replayed whole.
    publisher.failNext = 1;
    const outcomes: AcceptOutcome[] = [];
    const accept = acceptor.accept.bind(acceptor);
    acceptor.accept = async (locations) => {
      const outcome = await accept(locations);
      outcomes.push(outcome);
      return outcome;
    };
    const outcome = await bridge.run(batch, ctl);
    expect(outcomes.map((o) => [o.stored, o.replayed])).toEqual([[2, 0], [0, 2]]);
    expect(acceptor.stored.map((l) => l.id)).toEqual([idOf(batch.messages[0]!), idOf(batch.messages[2]!)]);
    expect(resolved).toEqual([batch.messages[2]!.offset]);
    expect(outcome).toMatchObject({ completed: true, attempts: 2, published: 1, accepted: 2 });
  });

  it('abandons the batch unresolved when told to stop while the publisher is failing', async () => {
    const { publisher, deadLetters, bridge } = setup();
    publisher.failNext = Number.POSITIVE_INFINITY;
    const batch = batchOf([good(devices[0]!, 1), good(devices[0]!, 2)]);
    let active = true;
    const { ctl, resolved, waits } = control(publisher, deadLetters, batch, {
      isActive: () => active,
      wait: async () => {
        waits.push(0);
        if (waits.length === 3) active = false;
      },
    });
    const outcome = await bridge.run(batch, ctl);
    expect(outcome).toMatchObject({ completed: false, resolvedOffset: null, attempts: 3 });
    expect(resolved).toEqual([]);
    expect(publisher.published).toEqual([]);
  });

  it('lets a heartbeat failure (rebalance) escape so the consumer can re-join', async () => {
    const { publisher, deadLetters, bridge } = setup();
    publisher.failNext = 1;
    const batch = batchOf([good(devices[0]!, 1)]);
    const { ctl, resolved } = control(publisher, deadLetters, batch, {
      heartbeat: async () => {
        throw new Error('The group is rebalancing, so a rejoin is needed');
      },
    });
    await expect(bridge.run(batch, ctl)).rejects.toThrow(/rebalancing/);
    expect(resolved).toEqual([]);
  });
});
