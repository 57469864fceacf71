import 'dotenv/config';
import path from 'node:path';
import { ROOT, processSpecs, startInfrastructure, startProcess, stopProcesses, waitForHealth, type RunningProcess } from './localStack';

/**
 * `npm run dev`: the whole platform on this machine. Uses what `.env` (or the environment)
 * configures and starts local stand-ins for the rest; Ctrl-C stops everything it started.
 */
const HEALTH_DEADLINE_MS = 60_000;

function log(message: string): void {
  process.stdout.write(`[dev] ${message}\n`);
}

async function main(): Promise<void> {
  const infrastructure = await startInfrastructure({
    env: process.env,
    cognitoDataDir: process.env.COGNITO_LOCAL_DATA_DIR ?? path.join(ROOT, '.local', 'cognito'),
    // A fixed port keeps the emulator's issuer, and so the tokens clients hold, valid across restarts.
    cognitoPort: Number(process.env.COGNITO_LOCAL_PORT ?? 9230),
    log,
  });
  // No mail server here: the codes cognito-local "emails" are printed (and kept in its mailbox.jsonl).
  infrastructure.cognito?.onMail((mail) => log(`verification code for ${mail.to}: ${mail.code}`));
  const processes: RunningProcess[] = [];
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    log('stopping');
    await stopProcesses(processes);
    await infrastructure.stop();
    log('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  const specs = processSpecs(infrastructure.env);
  for (const spec of specs) {
    const running = startProcess(spec, infrastructure.env, (name, line) => process.stdout.write(`${name.padEnd(8)} | ${line}\n`));
    processes.push(running);
    void running.exited.then((code) => {
      if (!stopping) {
        log(`${spec.name} exited with ${code}; stopping the stack`);
        void stop(1);
      }
    });
  }
  const deadline = Date.now() + HEALTH_DEADLINE_MS;
  await Promise.all(processes.map((p) => waitForHealth(`http://127.0.0.1:${p.spec.port}/health`, deadline, p.exited)));
  log(`ready: gateway http://localhost:${infrastructure.env.GATEWAY_PORT ?? 4000}/graphql (HTTP and graphql-ws); Ctrl-C stops everything`);
}

main().catch((error: unknown) => {
  process.stderr.write(`[dev] ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
