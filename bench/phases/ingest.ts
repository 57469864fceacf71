import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import type { BenchContext, PhaseResult, Row } from '../context';
import type { IngestLoadInput, IngestLoadResult } from '../load/ingestLoad';
import { locationKey, observeTenant } from '../live/observer';
import { PLATFORM_PROCESSES } from '../platform';
import { fmt, monotonicMs, sleep, summarize } from '../stats';
import { startWorker } from '../workers';

/**
 * Goal 4: `recordLocations` from 4 concurrent clients, batches of 100, through our gateway. A
 * location counts once its mutation returned (it is then committed with its outbox row). After the
 * load: the outbox must drain, every location must be on the Kafka topic (high watermarks before
 * and after) and published by the bridge on Redis, and every device's sequences must be 1..n with
 * no gap or duplicate in `locations`.
 */
const BATCH = 100;
const DRAIN_POLL_MS = 100;

async function topicMessages(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    // Messages ever appended: the high watermarks. (Not high - low: the mock broker keeps about 5 MB
    // per partition and moves the low watermark past older messages, and a long run exceeds that.)
    return offsets.reduce((n, p) => n + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}

export async function ingest(ctx: BenchContext): Promise<PhaseResult> {
  const { platform, settings } = ctx;
  const { tenantId, clients } = ctx.fixtures.ingest;
  const deviceIds = clients.flatMap((c) => c.deviceIds);
  const kafka = new Kafka({ clientId: `bench-count-${platform.run}`, brokers: platform.kafkaBrokers, logLevel: logLevel.NOTHING });
  const owner = new pg.Client({ connectionString: platform.ownerUrl });
  await owner.connect();
  const observer = await observeTenant(platform.redisUrl, platform.redisPrefix, tenantId);
  try {
    const onTopicBefore = await topicMessages(kafka, platform.topic);
    const input: IngestLoadInput = { url: platform.gatewayUrl, clients, batchSize: BATCH, durationS: settings.ingestWindowS };
    const worker = startWorker('bench/load/ingestLoad.ts', input, { name: 'load:ingest', log: ctx.workerLog });
    let result: IngestLoadResult;
    let cpu;
    try {
      await worker.next('ready', 30_000);
      ctx.log(`ingest: ${clients.length} clients, batches of ${BATCH}, ${settings.ingestWindowS} s`);
      const end = await ctx.meter.start({ 'load generator': worker.pid });
      worker.send({ type: 'go' });
      result = await worker.next<IngestLoadResult & { [key: string]: unknown }>('result', settings.ingestWindowS * 1000 + 60_000);
      cpu = await end();
    } finally {
      await worker.stop();
    }
    const accepted = result.accepted.length;
    const rate = (accepted * 1000) / Math.max(1, result.endedAt - result.startedAt);

    // The outbox drains on its own; its row count is state without an event.
    let drainedMs: number | null = null;
    const drainStart = monotonicMs();
    while (monotonicMs() - drainStart < settings.drainBoundMs + 60_000) {
      const { rows } = await owner.query<{ n: string }>('SELECT count(*) AS n FROM location_outbox');
      if (Number(rows[0]!.n) === 0) {
        drainedMs = monotonicMs() - result.endedAt;
        break;
      }
      await sleep(DRAIN_POLL_MS);
    }
    const onRedis = await observer.reached(accepted, 30_000);
    const onTopic = (await topicMessages(kafka, platform.topic)) - onTopicBefore;
    const { rows: sequenceRows } = await owner.query<{ devices: string; bad: string; locations: string }>(
      `SELECT count(*) AS devices, coalesce(sum(n), 0) AS locations,
              count(*) FILTER (WHERE n <> distinct_seqs OR min_seq <> 1 OR max_seq <> n OR last_seq <> n) AS bad
         FROM (SELECT d.id, d.last_seq, count(l.id) AS n, count(DISTINCT l.seq) AS distinct_seqs, min(l.seq) AS min_seq, max(l.seq) AS max_seq
                 FROM devices d LEFT JOIN locations l ON l.device_id = d.id
                WHERE d.id = ANY($1::uuid[]) GROUP BY d.id, d.last_seq) per_device`,
      [deviceIds],
    );
    const sequences = sequenceRows[0]!;
    const duplicatesInResponses = accepted - new Set(result.accepted.map(([d, s]) => locationKey(d, s))).size;

    const lags: number[] = [];
    for (const [deviceId, seq, returnedAt] of result.accepted) {
      const at = observer.published.get(locationKey(deviceId, seq));
      if (at !== undefined) lags.push(at - returnedAt);
    }
    const lag = summarize(lags);
    const batch = summarize(result.batchMs);

    const problems: string[] = [];
    if (result.errors) problems.push(`${result.errors} failed batch(es), first: ${result.firstError}`);
    if (drainedMs === null) problems.push('the outbox did not drain');
    if (onTopic !== accepted) problems.push(`${onTopic} messages on the topic for ${accepted} accepted locations`);
    if (!onRedis) problems.push(`only ${observer.published.size} of ${accepted} published on Redis by the bridge`);
    if (Number(sequences.bad) > 0 || Number(sequences.locations) !== accepted || duplicatesInResponses) {
      problems.push(`sequences: ${sequences.bad} device(s) not 1..n, ${sequences.locations} rows for ${accepted} accepted, ${duplicatesInResponses} repeated in responses`);
    }
    const failed = problems.length ? problems.join('; ') : undefined;
    const perLocation = (process: string) => (cpu.byProcess[process] ?? 0) / Math.max(1, accepted);
    const rows: Row[] = [
      {
        goal: '4',
        metric: `ingest: locations/s accepted and persisted (${clients.length} clients, batches of ${BATCH}, ${deviceIds.length} devices)`,
        ours: rate,
        baseline: null,
        target: { on: 'ours', atLeast: 10_000, text: '≥ 10,000, all on Kafka, outbox drained, sequences intact' },
        digits: 0,
        failed,
        note: `${accepted} accepted; batch p50 ${fmt(batch.p50)} / p99 ${fmt(batch.p99)} ms`,
      },
      {
        goal: '4',
        metric: 'ingest: messages on the Kafka topic / locations accepted',
        ours: onTopic,
        baseline: accepted,
        target: { on: 'ratio', atLeast: 1, atMost: 1, text: '= 1' },
        digits: 0,
        failed: onTopic === accepted ? undefined : 'not every location reached Kafka exactly once',
        note: `bridge published ${observer.published.size} distinct on Redis (${observer.repeats} repeats); ${sequences.devices} devices, ${sequences.bad} with broken sequences`,
      },
      {
        goal: '',
        metric: 'ingest: outbox empty, seconds after the last batch returned',
        ours: drainedMs === null ? null : drainedMs / 1000,
        baseline: null,
        target: null,
      },
      {
        goal: '',
        metric: 'ingest: accepted → published on Redis (outbox relay + Kafka + bridge), p50 ms',
        ours: lag.p50,
        baseline: null,
        target: null,
        note: `p99 ${fmt(lag.p99)} ms; includes the outbox backlog under full load and up to ${platform.kafkaMaxWaitMs} ms per empty fetch of the Kafka mock (maxWait ${platform.kafkaMaxWaitMs} ms)`,
      },
    ];
    const processes = [...PLATFORM_PROCESSES, 'postgres', 'load generator'];
    return {
      name: 'ingest',
      rows,
      notes: [
        `Each client is a member with its own ${clients[0]?.deviceIds.length ?? 0} devices; each batch has ${BATCH} locations spread over them; closed loop for ${settings.ingestWindowS} s, through our gateway (token verified per request).`,
        'This row goes the whole way: gateway → location subgraph (one transaction with the outbox rows) → outbox relay → Kafka mock → bridge → Redis.',
      ],
      tables: [
        ['| CPU ms per location | ' + processes.join(' | ') + ' |', '| --- |' + processes.map(() => ' --- |').join(''), '| ours | ' + processes.map((p) => fmt(perLocation(p), 3)).join(' | ') + ' |'].join('\n'),
      ],
    };
  } finally {
    observer.close();
    await owner.end();
  }
}
