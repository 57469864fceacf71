import type { CpuMeter } from './cpuMeter';
import type { Fixtures } from './fixtures';
import type { Platform } from './platform';

/** What every phase gets from the runner: the running platform, baselines, fixtures and a CPU meter. */
export interface BenchContext {
  platform: Platform;
  fixtures: Fixtures;
  baselines: { apolloUrl: string; hiveUrl: string };
  meter: CpuMeter;
  settings: BenchSettings;
  log(message: string): void;
  /** For worker processes' output lines. */
  workerLog(line: string): void;
}

/** Window lengths: full for the recorded run, short (BENCH_QUICK) while developing the harness. */
export interface BenchSettings {
  queryWindowS: number;
  queryRounds: number;
  warmupS: number;
  ingestWindowS: number;
  /** Seconds of publishing at each live row's rate. */
  liveWindowS: number;
  /** How long delivery may take after publishing stopped before what is missing is counted as lost. */
  drainBoundMs: number;
}

export const FULL: BenchSettings = { queryWindowS: 12, queryRounds: 4, warmupS: 2, ingestWindowS: 15, liveWindowS: 6, drainBoundMs: 45_000 };
export const QUICK: BenchSettings = { queryWindowS: 3, queryRounds: 1, warmupS: 1, ingestWindowS: 4, liveWindowS: 2, drainBoundMs: 20_000 };

/**
 * One result line. `ratio` is ours / baseline. A row with a target is met or not; `failed` (e.g.
 * an exactly-once violation) makes it not met whatever the numbers say.
 */
export interface Row {
  /** The goal number (1-6) with a letter for its parts; '' for supporting rows. */
  goal: string;
  metric: string;
  ours: number | null;
  baseline: number | null;
  /** What the baseline is, when the phase has several. */
  baselineName?: string;
  /** The target, applied to `on`; null for supporting rows. */
  target: { on: 'ours' | 'ratio'; atLeast?: number; atMost?: number; text: string } | null;
  /** Digits to show for ours / baseline. */
  digits?: number;
  note?: string;
  failed?: string;
}

export interface PhaseResult {
  name: string;
  rows: Row[];
  notes: string[];
  /** Markdown tables (e.g. CPU per process) for the phase's section of the results. */
  tables: string[];
}

export function ratioOf(row: Row): number | null {
  if (row.ours === null || row.baseline === null || !Number.isFinite(row.ours) || !Number.isFinite(row.baseline) || row.baseline === 0) return null;
  return row.ours / row.baseline;
}

export function isMet(row: Row): boolean | null {
  if (row.failed) return false;
  if (!row.target) return null;
  const value = row.target.on === 'ours' ? row.ours : ratioOf(row);
  if (value === null || !Number.isFinite(value)) return false;
  if (row.target.atLeast !== undefined && value < row.target.atLeast) return false;
  if (row.target.atMost !== undefined && value > row.target.atMost) return false;
  return true;
}
