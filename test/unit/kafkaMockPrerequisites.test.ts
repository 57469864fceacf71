import { KafkaMockPrerequisitesMissing, planKafkaMockBuild, provideBuildPrerequisites, type BuildEnvironment } from '../../tools/kafka-mock/prerequisites';

/**
 * First run on a fresh machine: the Kafka stand-in's build installs what it lacks where it can
 * (root with apt-get), saying so in one line, and otherwise stops with the one command to run.
 */
const ready: BuildEnvironment = { hasHeader: true, hasCompiler: true, hasMake: true, isRoot: false, hasAptGet: true };

function fakeInstaller() {
  const runs: string[] = [];
  const lines: string[] = [];
  return { runs, lines, installer: { run: async (command: string, args: string[]) => void runs.push([command, ...args].join(' ')), log: (line: string) => void lines.push(line) } };
}

test('everything present: build, install nothing', async () => {
  expect(planKafkaMockBuild(ready)).toEqual({ action: 'build' });
  const fake = fakeInstaller();
  await provideBuildPrerequisites(ready, fake.installer);
  expect(fake.runs).toEqual([]);
  expect(fake.lines).toEqual([]);
});

test('root with apt-get and no librdkafka-dev: installs it after apt-get update, in one log line', async () => {
  const fresh = { ...ready, hasHeader: false, isRoot: true };
  expect(planKafkaMockBuild(fresh)).toEqual({ action: 'install', packages: ['librdkafka-dev'] });
  const fake = fakeInstaller();
  await provideBuildPrerequisites(fresh, fake.installer);
  expect(fake.runs).toEqual([
    'apt-get -o DPkg::Lock::Timeout=120 update -qq',
    'apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends librdkafka-dev',
  ]);
  expect(fake.lines).toHaveLength(1);
  expect(fake.lines[0]).toMatch(/installing librdkafka-dev .*apt-get install -y --no-install-recommends librdkafka-dev/);
});

test('no compiler or make: build-essential comes along', () => {
  expect(planKafkaMockBuild({ ...ready, hasHeader: false, hasMake: false, isRoot: true })).toEqual({ action: 'install', packages: ['librdkafka-dev', 'build-essential'] });
  expect(planKafkaMockBuild({ ...ready, hasCompiler: false, isRoot: true })).toEqual({ action: 'install', packages: ['build-essential'] });
});

test('not root: stops with the one command, installs nothing', async () => {
  const fake = fakeInstaller();
  const refused = provideBuildPrerequisites({ ...ready, hasHeader: false }, fake.installer);
  await expect(refused).rejects.toBeInstanceOf(KafkaMockPrerequisitesMissing);
  await expect(refused).rejects.toThrow('Install with: sudo apt-get install -y --no-install-recommends librdkafka-dev');
  expect(fake.runs).toEqual([]);
});

test('no apt-get (not Debian): stops and names what to install', async () => {
  const plan = planKafkaMockBuild({ ...ready, hasHeader: false, isRoot: true, hasAptGet: false });
  expect(plan).toMatchObject({ action: 'refuse', packages: ['librdkafka-dev'] });
  expect(plan.action === 'refuse' && plan.command).toMatch(/librdkafka .*C compiler/);
});

test('an apt-get that fails is reported, not swallowed', async () => {
  const failing = { run: async () => Promise.reject(new Error('apt-get install failed: no network')), log: () => undefined };
  await expect(provideBuildPrerequisites({ ...ready, hasHeader: false, isRoot: true }, failing)).rejects.toThrow('no network');
});
