/**
 * Who resolves next: at most `concurrency` event batches are resolved at once across the whole
 * gateway (enough to overlap subgraph round trips, few enough that a burst queues here instead of
 * overloading the subgraphs), and a freed slot goes to the next TENANT in turn, not to the next
 * batch in one shared line: a tenant with many busy groups cannot make another tenant wait behind
 * all of them.
 */
export interface ScheduledWork {
  /** Resolves (or fails) one batch; the scheduler only needs to know when it is done. */
  run(): Promise<void>;
}

export class ResolutionScheduler {
  private running = 0;
  /** Per tenant, the work waiting for a slot, in arrival order (a Set: scheduling twice is once). */
  private readonly waiting = new Map<string, Set<ScheduledWork>>();
  /** Tenants with waiting work, in the order they get the next slot. */
  private readonly turn: string[] = [];

  constructor(private readonly concurrency: number) {}

  get queued(): number {
    let total = 0;
    for (const work of this.waiting.values()) total += work.size;
    return total;
  }

  schedule(tenantId: string, work: ScheduledWork): void {
    let line = this.waiting.get(tenantId);
    if (!line) {
      line = new Set();
      this.waiting.set(tenantId, line);
      this.turn.push(tenantId);
    }
    line.add(work);
    this.pump();
  }

  /** Forgets work that has not started (a group that ended). */
  cancel(tenantId: string, work: ScheduledWork): void {
    const line = this.waiting.get(tenantId);
    if (!line?.delete(work) || line.size > 0) return;
    this.waiting.delete(tenantId);
    const index = this.turn.indexOf(tenantId);
    if (index >= 0) this.turn.splice(index, 1);
  }

  private pump(): void {
    while (this.running < this.concurrency && this.turn.length > 0) {
      const tenantId = this.turn.shift() as string;
      const line = this.waiting.get(tenantId) as Set<ScheduledWork>;
      const work = line.values().next().value as ScheduledWork;
      line.delete(work);
      if (line.size > 0) this.turn.push(tenantId);
      else this.waiting.delete(tenantId);
      this.running += 1;
      work
        .run()
        .catch(() => undefined) // each work reports its own failures
        .finally(() => {
          this.running -= 1;
          this.pump();
        });
    }
  }
}
