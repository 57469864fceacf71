import { EventEmitter } from 'node:events';
import type { Producer } from 'kafkajs';
import pg from 'pg';
import { inSessionScope } from '../../lib/database';
import type { Logger } from '../../lib/logger';
import { locationEventKey } from '../../lib/locationEvent';
import { OUTBOX_CHANNEL } from '../../lib/locationStore';

/**
 * Moves accepted locations from the `location_outbox` table to Kafka.
 *
 * Why an outbox: `recordLocation` commits the location and its outbox row in one transaction, so
 * once the mutation returns the location is in the history and will reach Kafka even if this
 * process dies right after, or Kafka is down for a while (it waits in the table).
 *
 * One relay publishes at a time, across all replicas: the one holding a PostgreSQL advisory lock
 * on its own session (a direct connection, not the pool). That keeps each device's messages in
 * acceptance order (rows are read in insertion order, and a device's rows are inserted in sequence
 * order because its row is locked while they are written). A row is deleted only after Kafka
 * acknowledged it (acks from all in-sync replicas), so a crash in between re-sends it: consumers
 * de-duplicate by (deviceId, seq).
 *
 * Leadership is proven, not remembered. The lock belongs to the session, so a session that died
 * (its backend terminated, the network cut) has already released it to a standby; a relay that
 * merely remembered "I am the leader" would keep publishing beside the new one. So every read and
 * every delete of outbox rows runs on the lock session itself, in a transaction that first checks
 * `pg_locks` for the lock on that very backend; every round trip on the session has a timeout, and
 * TCP keepalive is on, so a dead or hung (half-open) session fails fast. Any failure on the session
 * makes the relay step down: it stops publishing, closes the session, and competes for the lock
 * again on a new one. What remains: a batch already read when the session was lost may still be
 * sent once (its delete then fails) while the new leader sends it too; consumers drop the
 * duplicates by sequence. Nothing is published after the failed delete.
 */
export interface OutboxRelayOptions {
  /** The lock session's connection (fleet_app): the advisory lock, LISTEN, and every outbox read and delete. */
  databaseUrl: string;
  producer: Producer;
  topic: string;
  logger: Logger;
  /**
   * Most rows per Kafka send. Default 1000: ~330 KB, well under Kafka's 1 MB default message-batch
   * limit, and 500-2000 drain within ~20% of each other (bench/dataAccess), above 10,000 rows/s.
   */
  batchSize?: number;
  /** Backstop poll and standby retry interval; wake-ups normally come from NOTIFY. */
  idleMs?: number;
  /** Longest a connect or a round trip on the lock session may take before the relay steps down. Default 5000. */
  sessionTimeoutMs?: number;
  /** TCP keepalive delay on the lock session, so a silently dead peer is noticed while idle. Default 10000. */
  keepAliveMs?: number;
}

/** The relay's advisory lock id (arbitrary, fixed). A single bigint key: pg_locks shows it as classid 0, objid = key, objsubid 1. */
export const RELAY_LOCK_KEY = 0x10ca7e;

const HOLDS_LOCK = `
  SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND classid = 0 AND objid = $1 AND objsubid = 1
      AND pid = pg_backend_pid() AND granted
  ) AS held`;

/**
 * The next rows in publish order. The payload comes back as the JSON text Kafka gets and the key
 * from the row's columns, so a row costs no JSON parse and stringify here.
 */
const NEXT_ROWS = 'SELECT id, tenant_id AS "tenantId", device_id AS "deviceId", payload::text AS payload FROM location_outbox ORDER BY id LIMIT $1';

const DELETE_ROWS = 'DELETE FROM location_outbox WHERE id = ANY($1::bigint[])';

/** LISTEN takes no parameter: the channel is spelled out (it is `OUTBOX_CHANNEL`; checked at load). */
const LISTEN_OUTBOX = 'LISTEN location_outbox';
if (LISTEN_OUTBOX !== 'LISTEN ' + OUTBOX_CHANNEL) throw new Error('LISTEN_OUTBOX must name OUTBOX_CHANNEL');

/** The lock session failed or no longer holds the lock: the relay must step down. */
class LockSessionLost extends Error {
  constructor(reason: string, options?: { cause: unknown }) {
    super(`outbox relay lock session lost: ${reason}`, options);
    this.name = 'LockSessionLost';
  }
}

/**
 * Emits `leadership` (true when this relay became the publisher, false when it stepped down), for
 * logs and tests.
 */
export class OutboxRelay extends EventEmitter {
  private running = false;
  private leader = false;
  private session: pg.Client | null = null;
  private wakeUp: (() => void) | null = null;
  private pendingWake = false;
  private loop: Promise<void> | null = null;
  private backoffMs = 0;
  private producerConnected = false;
  private readonly sessionTimeoutMs: number;

  constructor(private readonly options: OutboxRelayOptions) {
    super();
    this.sessionTimeoutMs = options.sessionTimeoutMs ?? 5_000;
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
    await this.stepDown();
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        if (!this.leader) await this.tryLead();
        const published = this.leader ? await this.publishBatch() : 0;
        this.backoffMs = 0;
        if (published === 0) await this.idle(this.options.idleMs ?? 1000);
      } catch (error) {
        if (error instanceof LockSessionLost) {
          this.options.logger.warn({ err: error }, 'outbox relay lost its lock session; stepping down');
          await this.stepDown();
        } else {
          // Kafka refused or timed out: the rows stay in the table and the lock stays held.
          this.options.logger.warn({ err: error }, 'outbox relay failed to publish; retrying');
        }
        this.backoffMs = Math.min(5000, Math.max(100, this.backoffMs * 2));
        await this.idle(this.backoffMs * (0.5 + Math.random() / 2));
      }
    }
  }

  private async tryLead(): Promise<void> {
    const session = this.session ?? (await this.openSession());
    const result = await this.onSession(() => session.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [RELAY_LOCK_KEY]));
    if (result.rows[0]?.locked !== true || this.session !== session) return;
    this.leader = true;
    this.options.logger.info('outbox relay is the publisher');
    this.emit('leadership', true);
  }

  private async openSession(): Promise<pg.Client> {
    const session = new pg.Client({
      connectionString: this.options.databaseUrl,
      application_name: 'fleet-outbox-relay',
      connectionTimeoutMillis: this.sessionTimeoutMs,
      query_timeout: this.sessionTimeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: this.options.keepAliveMs ?? 10_000,
    });
    // A terminated backend or a reset connection: the lock went with it.
    session.on('error', (error) => {
      if (this.session !== session) return;
      this.options.logger.warn({ err: error }, 'outbox relay lock session failed; stepping down');
      void this.stepDown();
    });
    session.on('notification', () => this.wake());
    try {
      await session.connect();
      await session.query(LISTEN_OUTBOX);
    } catch (error) {
      await this.close(session);
      throw new LockSessionLost('could not open it', { cause: error });
    }
    this.session = session;
    return session;
  }

  /** One round trip (or a few) on the session; any failure means the session cannot be trusted. */
  private async onSession<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw error instanceof LockSessionLost ? error : new LockSessionLost(error instanceof Error ? error.message : String(error), { cause: error });
    }
  }

  /** `work` in a 'system'-scoped transaction on the lock session, after proving the lock is still held there. */
  private whileLeading<T>(session: pg.Client, work: () => Promise<T>): Promise<T> {
    return this.onSession(() =>
      inSessionScope(session, { kind: 'system' }, async () => {
        const proof = await session.query<{ held: boolean }>({ name: 'fleet_outbox_lock_held', text: HOLDS_LOCK, values: [RELAY_LOCK_KEY] });
        if (proof.rows[0]?.held !== true) throw new LockSessionLost('the advisory lock is no longer held on it');
        return work();
      }),
    );
  }

  private async publishBatch(): Promise<number> {
    const session = this.session;
    if (!session) throw new LockSessionLost('no session');
    const { producer, topic } = this.options;
    const rows = await this.whileLeading(session, async () => {
      const result = await session.query<{ id: string; tenantId: string; deviceId: string; payload: string }>({
        name: 'fleet_outbox_next',
        text: NEXT_ROWS,
        values: [this.options.batchSize ?? 1000],
      });
      return result.rows;
    });
    if (rows.length === 0) return 0;
    if (!this.producerConnected) {
      await producer.connect();
      this.producerConnected = true;
    }
    await producer.send({
      topic,
      acks: -1,
      messages: rows.map((row) => ({ key: locationEventKey(row), value: row.payload })),
    });
    await this.whileLeading(session, () => session.query({ name: 'fleet_outbox_delete', text: DELETE_ROWS, values: [rows.map((row) => row.id)] }));
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

  /** Stops publishing and closes the session; ending it releases the lock, so a standby takes over. */
  private async stepDown(): Promise<void> {
    const session = this.session;
    const wasLeader = this.leader;
    this.session = null;
    this.leader = false;
    if (wasLeader) {
      this.options.logger.info('outbox relay stepped down');
      this.emit('leadership', false);
    }
    if (session) await this.close(session);
  }

  /**
   * Ends a session without waiting on a dead peer: pg destroys the socket when a query is still
   * outstanding (a hung round trip); a graceful goodbye gets `sessionTimeoutMs`, then is left to
   * the socket's keepalive.
   */
  private async close(session: pg.Client): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      session.end().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.sessionTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }
}
