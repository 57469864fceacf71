// Generates the Prisma client into generated/prisma (gitignored). It is the package's `postinstall`,
// so it runs on every fresh clone: quiet when it works, loud (output + exit code 1) when it does not.
//
// `prisma generate` never runs Prisma's native schema engine, but the CLI insists on having one and
// tries to download it from Prisma's binary host, which is not reachable everywhere. When
// PRISMA_SCHEMA_ENGINE_BINARY is unset we point it at a file that always exists (this Node binary);
// the CLI only checks that the path exists. A real engine given in PRISMA_SCHEMA_ENGINE_BINARY is
// used as is. `prisma migrate ...` is not run through here: see prisma/README.md.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const generatedClient = path.join(root, 'generated', 'prisma', 'client.ts');

function fail(message, output = '') {
  process.stderr.write(`${output}${output && !output.endsWith('\n') ? '\n' : ''}prisma-generate: ${message}\n`);
  process.exit(1);
}

let cli;
try {
  const require = createRequire(path.join(root, 'package.json'));
  const manifestPath = require.resolve('prisma/package.json');
  const bin = require(manifestPath).bin;
  cli = path.join(path.dirname(manifestPath), typeof bin === 'string' ? bin : bin.prisma);
} catch {
  // An install without devDependencies (npm ci --omit=dev) has no CLI: fine if the client was
  // generated before (for example copied from a build stage), fatal otherwise.
  if (existsSync(generatedClient)) {
    process.stderr.write('prisma-generate: the prisma CLI is not installed; keeping the existing generated/prisma\n');
    process.exit(0);
  }
  fail('the prisma CLI (devDependency "prisma") is not installed and generated/prisma does not exist; install with dev dependencies');
}

const env = { ...process.env };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY) env.PRISMA_SCHEMA_ENGINE_BINARY = process.execPath;
env.CHECKPOINT_DISABLE ??= '1'; // no update check over the network
env.PRISMA_HIDE_UPDATE_MESSAGE ??= '1';

const result = spawnSync(process.execPath, [cli, 'generate', '--schema', path.join(root, 'prisma', 'schema.prisma')], {
  cwd: root,
  env,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'pipe'],
});
const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;

if (result.error) fail(`could not run ${cli}: ${result.error.message}`, output);
if (result.status !== 0) fail(`prisma generate failed (exit ${result.status ?? result.signal})`, output);
if (!existsSync(generatedClient)) fail(`prisma generate reported success but ${path.relative(root, generatedClient)} is missing`, output);
