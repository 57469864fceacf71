import 'dotenv/config';
import path from 'node:path';
import {
  ROOT,
  killProcesses,
  processSpecs,
  startInfrastructure,
  startProcess,
  stopProcesses,
  waitForHealth,
  type Infrastructure,
  type RunningProcess,
} from './localStack';

/**
 * `npm run dev`: the whole platform on this machine. Uses what `.env` (or the environment)
 * configures and starts local stand-ins for the rest; Ctrl-C stops everything it started.
 *
 * Every way out (Ctrl-C, SIGTERM, SIGHUP, a process that fails to start or exits, an error in
 * here) goes through `stop`, which waits for the processes and the stand-ins to exit before the
 * runner does. Should the runner die without it (SIGKILL), its children notice on their own: see
 * `startProcess` in localStack.ts, and the stand-ins' watchdogs.
 */
const HEALTH_DEADLINE_MS = 60_000;

function log(message: string): void {
  process.stdout.write(`[dev] ${message}\n`);
}

const processes: RunningProcess[] = [];
let infrastructure: Infrastructure | undefined;
let stopping: Promise<void> | undefined;

function stop(reason: string, exitCode: number): Promise<void> {
  stopping ??= (async () => {
    log(`stopping: ${reason}`);
    try {
      await stopProcesses(processes);
      await infrastructure?.stop();
      log('stopped');
    } catch (error) {
      log(`stopping failed: ${error instanceof Error ? error.message : String(error)}`);
      exitCode = 1;
    }
    process.exit(exitCode);
  })();
  return stopping;
}

// The last resort on an exit that did not go through `stop` (process.exit elsewhere, an exception
// nobody caught): no child outlives the runner.
process.on('exit', () => killProcesses(processes));

/**
 * Under `npm run dev` one Ctrl-C arrives twice: from the terminal and forwarded by npm. Only a
 * signal this long after the first is a second one, which kills everything at once.
 */
const REPEATED_SIGNAL_MS = 1_000;
let firstSignalAt = 0;

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (!stopping) {
      firstSignalAt = Date.now();
      return void stop(signal, 0);
    }
    if (Date.now() - firstSignalAt < REPEATED_SIGNAL_MS) return;
    log(`${signal} again: killing everything now`);
    process.exit(1); // the `exit` handler above kills what is still running
  });
}

// Set by whoever runs the runner itself as a child (the end-to-end tests): stop when they are gone.
if (process.env.STOP_WHEN_STDIN_CLOSES === 'true') {
  const parentGone = () => void stop('stdin closed: the parent process is gone', 1);
  process.stdin.on('end', parentGone);
  process.stdin.on('close', parentGone);
  process.stdin.on('error', parentGone);
  process.stdin.resume();
}

async function main(): Promise<void> {
  infrastructure = await startInfrastructure({
    env: process.env,
    cognitoDataDir: process.env.COGNITO_LOCAL_DATA_DIR ?? path.join(ROOT, '.local', 'cognito'),
    // A fixed port keeps the emulator's issuer, and so the tokens clients hold, valid across restarts.
    cognitoPort: Number(process.env.COGNITO_LOCAL_PORT ?? 9230),
    log,
  });
  // A signal while the stand-ins started: `stop` already ran without them.
  if (stopping) return void (await infrastructure.stop());
  // No mail server here: the codes cognito-local "emails" are printed (and kept in its mailbox.jsonl).
  infrastructure.cognito?.onMail((mail) => log(`verification code for ${mail.to}: ${mail.code}`));

  for (const spec of processSpecs(infrastructure.env)) {
    const running = startProcess(spec, infrastructure.env, (name, line) => process.stdout.write(`${name.padEnd(8)} | ${line}\n`));
    processes.push(running);
    log(`started ${spec.name} (pid ${running.child.pid})`);
    void running.exited.then((code) => {
      if (!stopping) void stop(`${spec.name} exited with ${code}`, 1);
    });
  }
  const deadline = Date.now() + HEALTH_DEADLINE_MS;
  await Promise.all(processes.map((p) => waitForHealth(`http://127.0.0.1:${p.spec.port}/health`, deadline, p.exited)));
  log(`ready: gateway http://localhost:${infrastructure.env.GATEWAY_PORT ?? 4000}/graphql (HTTP and graphql-ws); Ctrl-C stops everything`);
}

main().catch((error: unknown) => {
  process.stderr.write(`[dev] ${error instanceof Error ? error.message : String(error)}\n`);
  void stop('start-up failed', 1);
});
