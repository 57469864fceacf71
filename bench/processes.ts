import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/**
 * CPU time and memory of the processes under measurement, read from /proc (Linux). A platform
 * process is started through `tsx`, whose CLI runs the real node process as its child, so every
 * reading covers a process and all its descendants; memory is the real (deepest) node process's.
 */
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

interface Stat {
  pid: number;
  ppid: number;
  /** utime + stime, ms. */
  cpuMs: number;
}

function readStat(pid: number): Stat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null; // gone
  }
  // The command name (field 2) may contain spaces and parentheses: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ppid = Number(fields[1]);
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { pid, ppid, cpuMs: (ticks * 1000) / CLOCK_TICKS };
}

function allStats(): Stat[] {
  const stats: Stat[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat) stats.push(stat);
  }
  return stats;
}

/** The pid and all its living descendants. */
export function processTree(rootPid: number, stats: Stat[] = allStats()): Stat[] {
  const children = new Map<number, Stat[]>();
  for (const stat of stats) children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), stat]);
  const root = stats.find((s) => s.pid === rootPid);
  if (!root) return [];
  const tree: Stat[] = [];
  const queue = [root];
  while (queue.length) {
    const next = queue.shift()!;
    tree.push(next);
    queue.push(...(children.get(next.pid) ?? []));
  }
  return tree;
}

/** Descendants of `rootPid` (not itself), e.g. to check that nothing the bench started is left. */
export function descendants(rootPid: number): number[] {
  return processTree(rootPid)
    .slice(1)
    .map((s) => s.pid);
}

/** The deepest process of the tree: under tsx, the node process that runs the service. */
export function serviceProcess(rootPid: number): number {
  let pid = rootPid;
  for (;;) {
    // Only node children: tsx also starts esbuild's service process, which serves no request.
    const child = processTree(pid).find((s) => s.ppid === pid && isNode(s.pid));
    if (!child) return pid;
    pid = child.pid;
  }
}

function isNode(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'node';
  } catch {
    return false;
  }
}

/** Resident set size of one process, bytes (0 when it is gone). */
export function rssBytes(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU ms used so far by each named process tree (dead trees read 0). */
export function treeCpu(roots: Record<string, number>): Record<string, number> {
  const stats = allStats();
  return Object.fromEntries(
    Object.entries(roots).map(([name, pid]) => [name, processTree(pid, stats).reduce((sum, s) => sum + s.cpuMs, 0)]),
  );
}

/** CPU ms used so far by each of these pids (e.g. PostgreSQL backends), by pid. */
export function pidCpu(pids: readonly number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    const stat = readStat(pid);
    if (stat) out.set(pid, stat.cpuMs);
  }
  return out;
}
