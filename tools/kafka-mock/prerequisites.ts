import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';

/**
 * What building the Kafka stand-in needs from the machine (Debian's librdkafka-dev for the mock
 * cluster's header and library, a C compiler and make) and what to do when some is missing: on a
 * machine where it can (root, apt-get), install it, saying so in one line; elsewhere stop with the
 * one command that installs it. `npm run dev` and `npm test` then need no third step.
 */
export interface BuildEnvironment {
  hasHeader: boolean;
  hasCompiler: boolean;
  hasMake: boolean;
  isRoot: boolean;
  hasAptGet: boolean;
}

export type BuildPlan =
  | { action: 'build' }
  | { action: 'install'; packages: string[] }
  | { action: 'refuse'; packages: string[]; command: string };

const HEADER = 'librdkafka/rdkafka_mock.h';
const INCLUDE_DIRS = ['/usr/include', '/usr/local/include', '/opt/homebrew/include'];

export function installCommand(packages: string[]): string {
  return `apt-get install -y --no-install-recommends ${packages.join(' ')}`;
}

export function planKafkaMockBuild(env: BuildEnvironment): BuildPlan {
  const packages = [...(env.hasHeader ? [] : ['librdkafka-dev']), ...(env.hasCompiler && env.hasMake ? [] : ['build-essential'])];
  if (packages.length === 0) return { action: 'build' };
  if (env.isRoot && env.hasAptGet) return { action: 'install', packages };
  const command = env.hasAptGet
    ? `sudo ${installCommand(packages)}`
    : // Not Debian: the same two things under other names (librdkafka >= 2.0 ships rdkafka_mock.h).
      `install librdkafka (>= 2.0, with its development headers) and a C compiler with make, e.g. brew install librdkafka`;
  return { action: 'refuse', packages, command };
}

export class KafkaMockPrerequisitesMissing extends Error {
  constructor(readonly packages: string[], readonly command: string) {
    super(`The local Kafka stand-in needs ${packages.join(' and ')} to build. Install with: ${command}`);
    this.name = 'KafkaMockPrerequisitesMissing';
  }
}

function onPath(program: string, env: NodeJS.ProcessEnv): boolean {
  return (env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export function readBuildEnvironment(env: NodeJS.ProcessEnv = process.env): BuildEnvironment {
  return {
    hasHeader: INCLUDE_DIRS.some((dir) => existsSync(path.join(dir, HEADER))),
    hasCompiler: onPath(env.CC ?? 'cc', env),
    hasMake: onPath('make', env),
    isRoot: process.getuid?.() === 0,
    hasAptGet: onPath('apt-get', env),
  };
}

export interface Installer {
  run(command: string, args: string[]): Promise<void>;
  log(line: string): void;
}

const aptInstaller: Installer = {
  run: (command, args) =>
    new Promise((resolve, reject) => {
      execFile(command, args, { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 16 * 1024 * 1024 }, (error, _stdout, stderr) =>
        error ? reject(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${stderr}`)) : resolve(),
      );
    }),
  log: (line) => process.stderr.write(`${line}\n`),
};

/** Makes sure the build can run: installs what is missing where allowed, or throws the command that would. */
export async function provideBuildPrerequisites(env: BuildEnvironment = readBuildEnvironment(), installer: Installer = aptInstaller): Promise<void> {
  const plan = planKafkaMockBuild(env);
  if (plan.action === 'build') return;
  if (plan.action === 'refuse') throw new KafkaMockPrerequisitesMissing(plan.packages, plan.command);
  installer.log(`kafka-mock: installing ${plan.packages.join(' ')} for the local Kafka stand-in (${installCommand(plan.packages)}; once per machine)`);
  // Another apt run (unattended upgrades, a second dev runner) may hold the lock for a while.
  const lock = ['-o', 'DPkg::Lock::Timeout=120'];
  await installer.run('apt-get', [...lock, 'update', '-qq']);
  await installer.run('apt-get', [...lock, 'install', '-y', '-qq', '--no-install-recommends', ...plan.packages]);
}
