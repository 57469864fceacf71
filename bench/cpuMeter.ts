import pg from 'pg';
import { pidCpu, treeCpu } from './processes';
import { monotonicMs } from './stats';

/**
 * CPU ms each process spent during a measurement window: utime + stime before and after, per
 * process tree, and for PostgreSQL the backends connected to the bench's own database (other
 * databases on the same server belong to other people's runs). Server-wide PostgreSQL work (WAL
 * writer, checkpointer) is not attributed to anyone.
 */
export interface CpuUsage {
  wallMs: number;
  /** name → CPU ms in the window. */
  byProcess: Record<string, number>;
  /** Backends that ended during the window: up to 250 ms of their CPU each is missing from `byProcess.postgres`. */
  postgresBackendsLost: number;
}

/** PostgreSQL backends come and go with the pools' idle timeouts: sampled this often, a backend that ends loses at most this much. */
const BACKEND_SAMPLE_MS = 250;

export class CpuMeter {
  constructor(
    private readonly roots: () => Record<string, number>,
    private readonly owner: pg.Client,
    private readonly database: string,
  ) {}

  private async backends(): Promise<number[]> {
    const { rows } = await this.owner.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [this.database]);
    return rows.map((r) => r.pid);
  }

  /** Starts a window over the platform's processes and `extra` ones (e.g. a load generator); the returned function ends it. */
  async start(extra: Record<string, number> = {}): Promise<() => Promise<CpuUsage>> {
    const first = pidCpu(await this.backends());
    /** Per backend: CPU when first seen in the window (0 if it started during it), and when last seen. */
    const seen = new Map([...first].map(([pid, ms]) => [pid, { from: ms, last: ms }]));
    const sample = async () => {
      for (const [pid, ms] of pidCpu(await this.backends())) {
        const known = seen.get(pid);
        if (known) known.last = ms;
        else seen.set(pid, { from: 0, last: ms });
      }
    };
    let sampling = Promise.resolve();
    const timer = setInterval(() => {
      sampling = sampling.then(sample).catch(() => undefined);
    }, BACKEND_SAMPLE_MS);
    const roots = { ...this.roots(), ...extra };
    const before = treeCpu(roots);
    const startedAt = monotonicMs();
    return async () => {
      const after = treeCpu(roots);
      const wallMs = monotonicMs() - startedAt;
      clearInterval(timer);
      await sampling;
      const alive = new Set((await this.backends()));
      await sample();
      let postgres = 0;
      let lost = 0;
      for (const [pid, { from, last }] of seen) {
        postgres += last - from;
        if (!alive.has(pid)) lost++;
      }
      const byProcess = Object.fromEntries(Object.keys(roots).map((name) => [name, (after[name] ?? 0) - (before[name] ?? 0)]));
      return { wallMs, byProcess: { ...byProcess, postgres }, postgresBackendsLost: lost };
    };
  }
}

export function addUsage(into: CpuUsage | null, usage: CpuUsage): CpuUsage {
  if (!into) return { ...usage, byProcess: { ...usage.byProcess } };
  const byProcess = { ...into.byProcess };
  for (const [name, ms] of Object.entries(usage.byProcess)) byProcess[name] = (byProcess[name] ?? 0) + ms;
  return { wallMs: into.wallMs + usage.wallMs, byProcess, postgresBackendsLost: into.postgresBackendsLost + usage.postgresBackendsLost };
}
