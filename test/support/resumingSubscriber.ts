import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

/**
 * A dashboard as a careful client writes one: it follows `locationUpdated` across gateway replicas,
 * and whenever its socket goes away for a reason other than its token (a replica killed, a
 * 1012 drain, a 1013), it reconnects to the next replica and resumes with `after` (the last
 * sequence it saw per device). What it received is kept in order, duplicates included, so a test
 * can assert exactly-once across the seams.
 */
export interface ResumingSubscriber {
  /** (deviceId, sequence) in the order received. */
  received: Array<{ deviceId: string; sequence: number; id: string }>;
  /** Close codes of every socket it lost, in order. */
  closes: number[];
  reconnects: number;
  /** Resolves once `done(received)` holds (checked on every arrival). */
  until(done: (received: ResumingSubscriber['received']) => boolean, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export interface ResumingSubscriberOptions {
  /** ws:// URLs of the replicas, tried in turn. */
  urls: string[];
  token: string;
  tenantId: string;
  deviceId?: string;
  /** Where to start: per device, the last sequence already seen (0: from the first location). */
  from?: Array<{ deviceId: string; sequence: number }>;
  /** Called when a socket is lost. */
  onClose?: (code: number) => void;
}

const FEED = `subscription($t: ID!, $d: ID, $after: [DeviceSequenceInput!]) {
  locationUpdated(tenantId: $t, deviceId: $d, after: $after) { id sequence device { id } }
}`;

export function followWithResume(options: ResumingSubscriberOptions): ResumingSubscriber {
  const received: ResumingSubscriber['received'] = [];
  const last = new Map<string, number>((options.from ?? []).map((p) => [p.deviceId, p.sequence]));
  const closes: number[] = [];
  const waiters = new Set<() => void>();
  let client: Client | null = null;
  let stopped = false;
  let attempt = 0;
  const self: ResumingSubscriber = {
    received,
    closes,
    reconnects: 0,
    until(done, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`condition not met after ${received.length} locations (closes: ${closes.join(', ')})`));
        }, timeoutMs);
        const check = () => {
          if (!done(received)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      stopped = true;
      await client?.dispose();
    },
  };

  const connect = () => {
    const url = options.urls[attempt % options.urls.length] as string;
    attempt += 1;
    const after = [...last].map(([deviceId, sequence]) => ({ deviceId, sequence }));
    let lost = false;
    const onLost = (code: number) => {
      if (lost || stopped) return;
      lost = true;
      closes.push(code);
      options.onClose?.(code);
      void client?.dispose();
      if (code === 4401 || code === 4403) return; // the token's problem: a test would notice
      self.reconnects += 1;
      connect();
    };
    client = createClient({
      url,
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${options.token}` },
      on: { closed: (event) => onLost((event as { code: number }).code) },
      onNonLazyError: () => onLost(1006),
    });
    client.subscribe<{ locationUpdated: { id: string; sequence: number; device: { id: string } } }>(
      { query: FEED, variables: { t: options.tenantId, d: options.deviceId ?? null, after: after.length ? after : null } },
      {
        next: ({ data }) => {
          if (!data) return;
          const { id, sequence, device } = data.locationUpdated;
          received.push({ deviceId: device.id, sequence, id });
          if (sequence > (last.get(device.id) ?? 0)) last.set(device.id, sequence);
          for (const waiter of [...waiters]) waiter();
        },
        error: () => onLost(1006),
        complete: () => undefined,
      },
    );
  };
  connect();
  return self;
}
