import type { Producer } from 'kafkajs';
import pg from 'pg';
import type { Database } from '../../lib/database';
import type { Logger } from '../../lib/logger';
import { locationEventKey, type LocationEvent } from '../../lib/locationEvent';

/**
 * Moves accepted locations from the `location_outbox` table to Kafka.
 *
 * Why an outbox: `recordLocation` commits the location and its outbox row in one transaction, so
 * once the mutation returns the location is in the history and will reach Kafka even if this
 * process dies right after, or Kafka is down for a while (it waits in the table).
 *
 * One relay publishes at a time, across all replicas: the one holding a PostgreSQL advisory lock.
 * That keeps each device's messages in acceptance order (rows are read in insertion order, and a
 * device's rows are inserted in sequence order because its row is locked while they are written).
 * A row is deleted only after Kafka acknowledged it (acks from all in-sync replicas), so a crash in
 * between re-sends it: consumers de-duplicate by (deviceId, seq).
 */
export interface OutboxRelayOptions {
  db: Database;
  /** A direct connection for the advisory lock and LISTEN (a session, so not through the pool). */
  databaseUrl: string;
  producer: Producer;
  topic: string;
  logger: Logger;
  batchSize?: number;
  /** Backstop poll and standby retry interval; wake-ups normally come from NOTIFY. */
  idleMs?: number;
}

export const OUTBOX_CHANNEL = 'location_outbox';
const RELAY_LOCK_KEY = 0x10ca7e; // arbitrary, fixed: the relay's advisory lock id

export class OutboxRelay {
  private running = false;
  private leader = false;
  private session: pg.Client | null = null;
  private wakeUp: (() => void) | null = null;
  private pendingWake = false;
  private loop: Promise<void> | null = null;
  private backoffMs = 0;
  private producerConnected = false;

  constructor(private readonly options: OutboxRelayOptions) {
    // Connected on first use, not at start-up: accepting locations must not wait for Kafka.
    options.producer.on(options.producer.events.DISCONNECT, () => {
      this.producerConnected = false;
    });
  }

  get isLeader(): boolean {
    return this.leader;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Called after a commit that wrote outbox rows; other replicas hear it through NOTIFY. */
  wake(): void {
    this.pendingWake = true;
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loop;
    await this.closeSession();
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        if (!this.leader) await this.tryLead();
        const published = this.leader ? await this.publishBatch() : 0;
        this.backoffMs = 0;
        if (published === 0) await this.idle(this.options.idleMs ?? 1000);
      } catch (error) {
        this.options.logger.warn({ err: error }, 'outbox relay failed; retrying');
        this.backoffMs = Math.min(5000, Math.max(100, this.backoffMs * 2));
        if (this.session && !(await this.sessionAlive())) await this.closeSession();
        await this.idle(this.backoffMs * (0.5 + Math.random() / 2));
      }
    }
  }

  private async tryLead(): Promise<void> {
    if (!this.session) {
      const session = new pg.Client({ connectionString: this.options.databaseUrl });
      session.on('error', () => void this.closeSession());
      session.on('notification', () => this.wake());
      await session.connect();
      await session.query(`LISTEN ${OUTBOX_CHANNEL}`);
      this.session = session;
    }
    const result = await this.session.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [RELAY_LOCK_KEY]);
    this.leader = result.rows[0]?.locked === true;
    if (this.leader) this.options.logger.info('outbox relay is the publisher');
  }

  private async publishBatch(): Promise<number> {
    const { db, producer, topic } = this.options;
    const rows = await db.inScope({ kind: 'system' }, (tx) =>
      tx.locationOutbox.findMany({ orderBy: { id: 'asc' }, take: this.options.batchSize ?? 500, select: { id: true, payload: true } }),
    );
    if (rows.length === 0) return 0;
    if (!this.producerConnected) {
      await producer.connect();
      this.producerConnected = true;
    }
    await producer.send({
      topic,
      acks: -1,
      messages: rows.map((row) => {
        const event = row.payload as unknown as LocationEvent;
        return { key: locationEventKey(event), value: JSON.stringify(event) };
      }),
    });
    await db.inScope({ kind: 'system' }, (tx) => tx.locationOutbox.deleteMany({ where: { id: { in: rows.map((r) => r.id) } } }));
    return rows.length;
  }

  private idle(ms: number): Promise<void> {
    if (this.pendingWake || !this.running) {
      this.pendingWake = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.wakeUp = null;
        self.pendingWake = false;
        resolve();
      }
      this.wakeUp = done;
    });
  }

  private async sessionAlive(): Promise<boolean> {
    try {
      await this.session?.query('SELECT 1');
      return true;
    } catch {
      return false;
    }
  }

  private async closeSession(): Promise<void> {
    const session = this.session;
    this.session = null;
    this.leader = false;
    // Ending the session releases the advisory lock, so a standby replica takes over.
    await session?.end().catch(() => undefined);
  }
}
