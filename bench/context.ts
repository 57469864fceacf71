import type { Session } from '../test/support/client';
import type { TestStack } from '../test/support/stack';

/** What every benchmark gets from the runner: one platform and its fixtures, started once. */
export interface BenchContext {
  stack: TestStack;
  admin: Session;
  tenantId: string;
  tenantName: string;
  member: Session;
  /** Devices of the member's tenant, each with a few locations (the throughput query lists them). */
  devices: string[];
  /** A device nobody else uses: the latency benchmark's. */
  latencyDevice: string;
  /** A device nobody else uses: the fan-out benchmark's. */
  fanoutDevice: string;
  /** Shared deadline of the whole run (performance.now() ms); benchmarks cut their phases short past it. */
  deadline: number;
  log(message: string): void;
}

/**
 * One line of the results table. `ratio` is always ours / baseline (see bench/README.md): below 1
 * means ours is smaller (faster latency, fewer executions), above 1 larger (e.g. more requests/s).
 */
export interface ResultRow {
  metric: string;
  ours: string;
  baseline: string;
  ratio: string;
  note?: string;
}

export interface BenchResult {
  name: string;
  /** What "ours" and "baseline" are, in one line each. */
  ours: string;
  baseline: string;
  rows: ResultRow[];
  /** Free-form observations (bottlenecks, evidence) for the report. */
  notes: string[];
}
