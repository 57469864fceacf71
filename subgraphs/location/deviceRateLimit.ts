import type { Redis } from 'ioredis';
import { RateLimited } from '../../lib/errors';

/**
 * The per-device minimum interval between accepted locations, shared by every replica through
 * Redis. A call is one acceptance per device it names (a batch uploading a backlog counts once).
 * All of a call's devices are checked and claimed in one script, so a refused batch claims none.
 */
const CLAIM = `
local longest = 0
for i, key in ipairs(KEYS) do
  local ttl = redis.call('PTTL', key)
  if ttl > longest then longest = ttl end
end
if longest > 0 then return longest end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, '1', 'PX', ARGV[1])
end
return 0
`;

export class DeviceRateLimit {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly intervalMs: number,
  ) {}

  get enabled(): boolean {
    return this.intervalMs > 0;
  }

  private keys(deviceIds: Iterable<string>): string[] {
    return [...new Set(deviceIds)].sort().map((id) => `${this.prefix}device:${id}:last-accepted`);
  }

  /** Claims the interval for each device, or throws RATE_LIMITED with the wait before a retry. */
  async claim(deviceIds: Iterable<string>): Promise<void> {
    if (!this.enabled) return;
    const keys = this.keys(deviceIds);
    const waitMs = (await this.redis.eval(CLAIM, keys.length, ...keys, String(this.intervalMs))) as number;
    if (waitMs > 0) {
      throw new RateLimited(`A device may report at most once every ${this.intervalMs} ms`, waitMs);
    }
  }

  /** Gives the interval back when the claimed locations were not accepted after all. */
  async release(deviceIds: Iterable<string>): Promise<void> {
    if (!this.enabled) return;
    const keys = this.keys(deviceIds);
    if (keys.length) await this.redis.del(...keys);
  }
}
