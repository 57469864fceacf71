import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isMet, ratioOf, type PhaseResult, type Row } from './context';
import { fmt } from './stats';

/**
 * The results files: `latest.md` (the last full run, every row with ours / baseline / ratio /
 * target / met, next to the first recorded run, "before"), and the history: `history.jsonl`, one
 * line per full run (the data), rendered to `history.md` (every run, oldest first).
 */
export const RESULTS_DIR = path.resolve(__dirname, 'results');
const HISTORY_DATA = path.join(RESULTS_DIR, 'history.jsonl');

export interface RunInfo {
  label: string;
  date: string;
  commit: string;
  node: string;
  machine: string;
  loadBefore: number[];
  loadAfter: number[];
  durationS: number;
  phases: string[];
}

interface HistoryRow {
  key: string;
  goal: string;
  metric: string;
  ours: number | null;
  baseline: number | null;
  ratio: number | null;
  met: boolean | null;
  failed?: string;
}

interface HistoryEntry extends RunInfo {
  rows: HistoryRow[];
}

/** Goal rows keyed by goal and their order within it, so runs can be compared row by row. */
function goalRows(results: PhaseResult[]): Array<{ key: string; row: Row }> {
  const seen = new Map<string, number>();
  return results.flatMap((r) => r.rows).filter((row) => row.goal).map((row) => {
    const n = (seen.get(row.goal) ?? 0) + 1;
    seen.set(row.goal, n);
    return { key: `${row.goal}#${n}`, row };
  });
}

const value = (v: number | null, digits = 2) => (v === null ? '—' : fmt(v, digits));
const ratioText = (r: number | null) => (r === null ? '—' : `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}x`);
const metText = (met: boolean | null) => (met === null ? '' : met ? 'yes' : '**no**');
const loadText = (l: number[]) => l.map((v) => v.toFixed(2)).join(' / ');
const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function readHistory(): HistoryEntry[] {
  if (!existsSync(HISTORY_DATA)) return [];
  return readFileSync(HISTORY_DATA, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as HistoryEntry);
}

function infoTable(info: RunInfo): string[] {
  return [
    '| | |',
    '| --- | --- |',
    `| label | ${info.label} |`,
    `| date | ${info.date} |`,
    `| commit | ${info.commit} |`,
    `| machine | ${info.machine}; Node ${info.node} |`,
    `| load average (1/5/15 min) before → after | ${loadText(info.loadBefore)} → ${loadText(info.loadAfter)} |`,
    `| run time | ${info.durationS.toFixed(0)} s |`,
  ];
}

export function renderResults(info: RunInfo, results: PhaseResult[], failures: string[]): string {
  const before = readHistory().find((entry) => entry.label === 'before') ?? null;
  const beforeRows = new Map(before?.rows.map((r) => [r.key, r]) ?? []);
  const keyed = new Map(goalRows(results).map(({ key, row }) => [row, key]));
  const lines = [
    '# Benchmark results',
    '',
    'Written by `npm run bench` (bench/run.ts). How to read it, and which rows bypass what: [../README.md](../README.md).',
    'Every baseline is measured in the same run, on the same subgraph processes and the same noisy 2-core machine: compare **ratios**, and absolute figures only as a check.',
    '',
    ...infoTable(info),
    '',
    '## Goals (issue 11)',
    '',
    `| goal | metric | ours | baseline | ratio | target | met? | ${before ? `before (${before.date.slice(0, 10)}, ${before.commit})` : 'before'} | note |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const result of results) {
    for (const row of result.rows) {
      const key = keyed.get(row);
      const then = key ? beforeRows.get(key) : undefined;
      const thenText = then ? `${value(then.ours, row.digits)}${then.ratio !== null ? ` (${ratioText(then.ratio)})` : ''}` : '';
      const baseline = row.baseline === null ? '—' : `${value(row.baseline, row.digits)}${row.baselineName ? ` (${row.baselineName})` : ''}`;
      const note = [row.failed ? `**FAILED:** ${row.failed}` : '', row.note ?? ''].filter(Boolean).join('; ');
      lines.push(
        `| ${row.goal} | ${cell(row.metric)} | ${value(row.ours, row.digits)} | ${cell(baseline)} | ${ratioText(ratioOf(row))} | ${row.target ? cell(row.target.text) : ''} | ${metText(isMet(row))} | ${thenText} | ${cell(note)} |`,
      );
    }
  }
  if (failures.length) lines.push('', '## Phases that failed', '', ...failures.map((f) => `- ${f}`));
  for (const result of results) {
    lines.push('', `## ${result.name}`, '', ...result.notes.map((n) => `- ${n}`));
    for (const table of result.tables) lines.push('', table);
  }
  return `${lines.join('\n')}\n`;
}

export function recordHistory(info: RunInfo, results: PhaseResult[]): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const entry: HistoryEntry = {
    ...info,
    rows: goalRows(results).map(({ key, row }) => ({ key, goal: row.goal, metric: row.metric, ours: row.ours, baseline: row.baseline, ratio: ratioOf(row), met: isMet(row), failed: row.failed })),
  };
  appendFileSync(HISTORY_DATA, `${JSON.stringify(entry)}\n`);
  const history = readHistory();
  const lines = [
    '# Benchmark history',
    '',
    'One section per full `npm run bench` run, oldest first (data: `history.jsonl`). The run labelled "before" is the baseline of `latest.md`\'s "before" column.',
  ];
  for (const run of history) {
    lines.push('', `## ${run.label}: ${run.date}, ${run.commit}`, '', `load ${loadText(run.loadBefore)} → ${loadText(run.loadAfter)}, ${run.durationS.toFixed(0)} s, phases: ${run.phases.join(', ')}`, '');
    lines.push('| goal | metric | ours | baseline | ratio | met? |', '| --- | --- | --- | --- | --- | --- |');
    for (const row of run.rows) {
      lines.push(`| ${row.goal} | ${cell(row.metric)} | ${value(row.ours)} | ${value(row.baseline)} | ${ratioText(row.ratio)} | ${metText(row.met)}${row.failed ? ` (${cell(row.failed.slice(0, 160))})` : ''} |`);
    }
  }
  writeFileSync(path.join(RESULTS_DIR, 'history.md'), `${lines.join('\n')}\n`);
}
