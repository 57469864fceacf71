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
  /** Backends that ended during the window: their CPU is missing from `byProcess.postgres`. */
  postgresBackendsLost: number;
}

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
    const pgBefore = pidCpu(await this.backends());
    const roots = { ...this.roots(), ...extra };
    const before = treeCpu(roots);
    const startedAt = monotonicMs();
    return async () => {
      const after = treeCpu(roots);
      const wallMs = monotonicMs() - startedAt;
      const pgAfter = pidCpu(await this.backends());
      let postgres = 0;
      for (const [pid, ms] of pgAfter) postgres += ms - (pgBefore.get(pid) ?? 0);
      const lost = [...pgBefore.keys()].filter((pid) => !pgAfter.has(pid)).length;
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
