import pg from 'pg';
import { idTokenClaims, mintJwt } from '../../test/support/tokens';
import type { BenchContext, PhaseResult, Row } from '../context';
import { clientView } from '../fixtures';
import { checkExactlyOnce, describeExactlyOnce, gatewayGauge, preparePublisher, startSubscribers } from '../live/delivery';
import { currentSequences, recordEvents } from '../live/events';
import type { SubscriptionSpec, SubscribersInput } from '../live/subscribers';
import { rssBytes, serviceProcess } from '../processes';
import { fmt, monotonicMs, sleep } from '../stats';
import { PER_DEVICE } from './live';

/**
 * Goals 5c and 6: a reconnect storm (what follows a gateway restart): 1,000 members of one tenant,
 * each on a socket with 10 subscriptions (one per device), all connecting at once from two
 * subscriber processes. Reported: the time until the gateway holds all 10,000 subscriptions, any
 * refusal, then the gateway's RSS with them open, and one location per device delivered to every
 * subscription exactly once.
 */
const WORKERS = 2;
const OPEN_BOUND_MS = 60_000;
const EVENTS_PER_DEVICE = 3;

export async function reconnectStorm(ctx: BenchContext): Promise<PhaseResult> {
  const { platform } = ctx;
  const { tenantId, deviceIds, users } = ctx.fixtures.storm;
  const view = clientView(platform);
  // Tokens as cognito-local signs them (its key ships in its npm package), for users recorded as the platform records members.
  const sockets: SubscribersInput['sockets'] = users.map((user, u) => ({
    token: mintJwt(idTokenClaims(view, user)),
    subscriptions: deviceIds.map((d, j): SubscriptionSpec => ({ id: `u${u}d${j}`, query: PER_DEVICE, variables: { t: tenantId, d } })),
  }));
  const perWorker = Math.ceil(sockets.length / WORKERS);
  const inputs: SubscribersInput[] = Array.from({ length: WORKERS }, (_, w) => ({
    wsUrl: platform.wsUrl,
    sockets: sockets.slice(w * perWorker, (w + 1) * perWorker),
    connect: 'together',
    timed: [],
  }));
  const total = sockets.length * deviceIds.length;

  const gatewayPid = serviceProcess(platform.pids().gateway!);
  const rssBefore = rssBytes(gatewayPid);
  const before = await gatewayGauge(ctx, 'fleet_gateway_subscriptions');
  const subscribers = await startSubscribers(ctx, 'storm', inputs);
  const owner = new pg.Client({ connectionString: platform.ownerUrl });
  await owner.connect();
  try {
    ctx.log(`storm: ${sockets.length} sockets × ${deviceIds.length} subscriptions, all at once`);
    const goAt = monotonicMs();
    const opening = subscribers.open();
    // The gateway's own count is the only sign that a subscription is in place (graphql-ws has no ack).
    let openMs: number | null = null;
    let held = before;
    while (monotonicMs() - goAt < OPEN_BOUND_MS) {
      held = await gatewayGauge(ctx, 'fleet_gateway_subscriptions');
      if (held >= before + total) {
        openMs = monotonicMs() - goAt;
        break;
      }
      await sleep(50);
    }
    const opened = await opening;
    const refused = opened.reduce((n, o) => n + o.errors, 0);
    const closes: Record<string, number> = {};
    for (const o of opened) for (const [code, n] of Object.entries(o.closes)) closes[code] = (closes[code] ?? 0) + n;
    const firstError = opened.find((o) => o.firstError)?.firstError ?? null;
    const rssOpen = rssBytes(gatewayPid);

    // Then one location per device, a few times: each subscription must get its device's, once, in order.
    const sequences = await currentSequences(owner, deviceIds);
    const ranges = deviceIds.map((deviceId) => ({ deviceId, from: (sequences.get(deviceId) ?? 0) + 1, to: (sequences.get(deviceId) ?? 0) + EVENTS_PER_DEVICE }));
    const baseMs = Date.now();
    await recordEvents(owner, tenantId, ranges, baseMs);
    const publisher = await preparePublisher(ctx, tenantId, ranges, baseMs, 0);
    // Only what opened can receive: wait for that, not for subscriptions already refused.
    const refusedBefore = new Set((await subscribers.report()).failed);
    const delivered = subscribers.delivered(
      inputs.map((input) => input.sockets.flatMap((s) => s.subscriptions).filter((sub) => !refusedBefore.has(sub.id)).length * EVENTS_PER_DEVICE),
      ctx.settings.drainBoundMs,
    );
    try {
      await publisher.go();
    } finally {
      await publisher.stop();
    }
    await delivered;
    const report = await subscribers.report();
    // Subscriptions that never opened (their socket was refused) are row 6's failure; the ones that
    // did open must each get their device's locations exactly once, in order.
    const failed = new Set(report.failed);
    const expected = new Map(
      sockets
        .flatMap((s) => s.subscriptions)
        .filter((sub) => !failed.has(sub.id))
        .map((sub) => [sub.id, ranges.filter((r) => r.deviceId === sub.variables.d)]),
    );
    const exactlyOnce = checkExactlyOnce(report, expected);

    const problems: string[] = [];
    if (openMs === null) problems.push(`only ${held - before} of ${total} subscriptions open after ${OPEN_BOUND_MS / 1000} s`);
    if (Object.keys(closes).length) problems.push(`sockets closed: ${JSON.stringify(closes)}`);
    if (refused || failed.size) problems.push(`${failed.size} subscription(s) failed, ${refused} other error(s); first: ${firstError ?? report.firstError ?? 'none'}`);
    const stormFailed = problems.length ? problems.join('; ') : undefined;
    const deliveryFailed = exactlyOnce.violations || report.errors ? `${describeExactlyOnce(exactlyOnce)} (over the ${expected.size} open subscriptions)${report.errors ? `; ${report.errors} error(s), first: ${report.firstError}` : ''}` : undefined;
    const opens = held - before;
    const rows: Row[] = [
      {
        goal: '5c',
        metric: `${opens} open subscriptions: gateway RSS, MB`,
        ours: rssOpen / 2 ** 20,
        baseline: null,
        target: { on: 'ours', atMost: 512, text: '≤ 512' },
        digits: 0,
        failed: openMs === null ? `only ${opens} of ${total} open` : undefined,
        note: `${fmt(rssBefore / 2 ** 20, 0)} MB before the storm: ~${fmt((rssOpen - rssBefore) / Math.max(1, opens) / 1024, 1)} KB per subscription`,
      },
      {
        goal: '6',
        metric: `reconnect storm: ${sockets.length} sockets × ${deviceIds.length} subscriptions at once: seconds until all open`,
        ours: openMs === null ? null : openMs / 1000,
        baseline: null,
        target: { on: 'ours', atMost: 10, text: '≤ 10, no error' },
        failed: stormFailed,
        note: `${WORKERS} subscriber processes; then ${EVENTS_PER_DEVICE} locations per device to the ${expected.size} open subscriptions: ${describeExactlyOnce(exactlyOnce)}`,
      },
    ];
    if (deliveryFailed) rows.push({ goal: '6', metric: 'reconnect storm: delivered / expected after the storm (open subscriptions)', ours: exactlyOnce.delivered, baseline: exactlyOnce.expected, target: null, digits: 0, failed: deliveryFailed });
    return {
      name: 'reconnect storm',
      rows,
      notes: [
        `${sockets.length} members of one tenant recorded in the database as the owner, tokens minted with cognito-local's public signing key (as test/integration/identity.test.ts does), selection \`${PER_DEVICE}\`.`,
        'All open: the gateway\'s `fleet_gateway_subscriptions` gauge (polled every 50 ms; a subscription has no acknowledgement in graphql-ws) reached the storm\'s total.',
      ],
      tables: [],
    };
  } finally {
    await subscribers.stop();
    await owner.end();
  }
}
