import { CALLER_HEADER, type Caller } from '../../lib/caller';
import { signedCaller } from '../subgraphFetcher';
import { postToSubgraph } from '../subgraphHttp';
import type { DeviceSequence, LocationEvent, SequenceRange } from '../../lib/locationEvent';

/**
 * What the gateway reads of the location history for live delivery, straight from the location
 * subgraph's internal fields (not in the API schema): where each device's sequence stands, and the
 * locations after a given sequence. Groups fill gaps with it (a sequence jump, a Redis reconnect)
 * so a subscriber never silently misses a location.
 */

export class HistoryUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HistoryUnavailable';
  }
}

const EVENT_FIELDS = 'id latitude longitude accuracy speed heading altitude recordedAt receivedAt sequence device { id tenant { id } }';

type StoredLocation = Omit<LocationEvent, 'seq' | 'tenantId' | 'deviceId'> & { sequence: number; device: { id: string; tenant: { id: string } } };

export class LocationHistory {
  constructor(
    private url: string,
    private readonly callerSigningSecret: string,
    private readonly timeoutMs: number,
  ) {}

  /** The location subgraph moved (a reloaded supergraph routes it elsewhere). */
  moveTo(url: string): void {
    this.url = url;
  }

  /** The newest accepted sequence of each device the scope covers (0 before its first location). */
  async positions(caller: Caller, tenantId: string, deviceId?: string | null): Promise<DeviceSequence[]> {
    const data = await this.ask<{ _devicePositions: DeviceSequence[] }>(
      'query($t: ID!, $d: ID) { _devicePositions(tenantId: $t, deviceId: $d) { deviceId sequence } }',
      { t: tenantId, d: deviceId ?? null },
      caller,
    );
    return data._devicePositions;
  }

  /**
   * For each range, the newest `limit` locations inside it, oldest first: when more were missed
   * than the bound allows, the ones dropped are the oldest, so what is delivered joins the live
   * stream without a gap and a client sees where its own gap begins.
   */
  async between(caller: Caller, tenantId: string, ranges: readonly SequenceRange[], limit: number): Promise<LocationEvent[]> {
    if (ranges.length === 0) return [];
    const data = await this.ask<{ _locationsBetween: StoredLocation[] }>(
      `query($t: ID!, $r: [SequenceRangeInput!]!, $l: Int!) { _locationsBetween(tenantId: $t, ranges: $r, limit: $l) { ${EVENT_FIELDS} } }`,
      { t: tenantId, r: ranges.map((r) => ({ deviceId: r.deviceId, after: r.after, before: r.before ?? null })), l: limit },
      caller,
    );
    return data._locationsBetween.map(({ sequence, device, ...fields }) => ({ ...fields, seq: sequence, deviceId: device.id, tenantId: device.tenant.id }));
  }

  private async ask<T>(query: string, variables: Record<string, unknown>, caller: Caller): Promise<T> {
    let body: { data?: T | null; errors?: Array<{ message: string }> };
    try {
      const answer = await postToSubgraph(
        this.url,
        { 'content-type': 'application/json', [CALLER_HEADER]: signedCaller(caller, this.callerSigningSecret) },
        JSON.stringify({ query, variables }),
        this.timeoutMs,
      );
      body = JSON.parse(answer.body) as typeof body;
    } catch (error) {
      throw new HistoryUnavailable('the location history could not be read', { cause: error });
    }
    if (!body.data || body.errors?.length) throw new HistoryUnavailable(`the location history answered: ${body.errors?.[0]?.message ?? 'no data'}`);
    return body.data;
  }
}
