import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';

/**
 * Entry points run as real child processes (`node --import tsx <entry>`, no tsx CLI in between),
 * their output kept line by line so a test can wait for what a process says instead of sleeping.
 */
export const ROOT = path.resolve(__dirname, '..', '..');
const TSX = pathToFileURL(require.resolve('tsx')).href;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildEntry {
  child: ChildProcess;
  pid: number;
  lines: string[];
  exited: Promise<Exit>;
  /** Resolves with the first line (already printed or yet to come) matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Signals the process and measures how long it takes to exit. */
  signal(signal: NodeJS.Signals): Promise<Exit & { ms: number }>;
}

export function startEntry(entry: string, env: NodeJS.ProcessEnv, options: { stdin?: 'pipe' | 'ignore'; detached?: boolean } = {}): ChildEntry {
  const child = spawn(process.execPath, ['--import', TSX, entry], {
    cwd: ROOT,
    env,
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  const lines: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream! }).on('line', (line) => {
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.pattern.test(line)) {
          waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    });
  }
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const tail = () => lines.slice(-40).join('\n');
  return {
    child,
    pid: child.pid as number,
    lines,
    exited,
    waitForLine: (pattern, timeoutMs = 30_000) => {
      const seen = lines.find((line) => pattern.test(line));
      if (seen) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const waiter = { pattern, resolve: (line: string) => (clearTimeout(timer), resolve(line)) };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`${entry} printed no line matching ${pattern} in ${timeoutMs} ms; its last lines:\n${tail()}`));
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then((exit) => {
          if (!waiters.delete(waiter)) return;
          clearTimeout(timer);
          reject(new Error(`${entry} exited (${JSON.stringify(exit)}) before printing ${pattern}; its last lines:\n${tail()}`));
        });
      });
    },
    signal: async (signal) => {
      const sent = Date.now();
      child.kill(signal);
      const exit = await exited;
      return { ...exit, ms: Date.now() - sent };
    },
  };
}

/** Every descendant of `pid` (children, grandchildren, ...), from the process table. */
export function descendants(pid: number): number[] {
  const table = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number) as [number, number]);
  const found: number[] = [];
  const walk = (parent: number) => {
    for (const [child, ppid] of table) {
      if (ppid === parent) {
        found.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return found;
}

/** Still running: present in the process table and not a zombie (an exited process nobody reaped yet). */
export function running(pids: number[]): number[] {
  if (pids.length === 0) return [];
  try {
    const rows = execFileSync('ps', ['-o', 'pid=,stat=', '-p', pids.join(',')], { encoding: 'utf8' }).trim().split('\n');
    return rows.map((row) => row.trim().split(/\s+/)).filter(([, stat]) => !stat?.startsWith('Z')).map(([pid]) => Number(pid));
  } catch {
    return []; // ps exits 1 when none of the pids exists
  }
}

/**
 * Waits until none of `pids` runs. Polled: the exit of a process that is not our child has no
 * event to await.
 */
export async function waitUntilGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = running(pids);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    left = running(left);
  }
  return left;
}

/**
 * Every live process whose environment holds `marker` (NAME=value), found through /proc: a
 * process started with it passes it on to all it starts, so this finds every descendant even once
 * re-parented (an orphan's parent is init, not the runner that started it).
 */
export function processesMarked(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(marker)) found.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return running(found);
}
