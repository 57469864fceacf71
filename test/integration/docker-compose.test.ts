// The AWS SDK v3 warns once per process on Node < 22; this silences exactly that warning.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { EXAMPLE_SECRETS, callerEnv, cognitoEnv, commonEnv, databaseEnv, hostEnv, kafkaEnv, lifecycleEnv, redisEnv } from '../../lib/config';
import { initPool, readIdsFile, writeIdsFile } from '../../tools/cognito-local/init-pool';

/**
 * docker-compose.yml, the Dockerfile and .dockerignore, checked without a Docker engine.
 *
 * With Docker Compose v2 on the machine (`docker compose version` answers), the file is resolved by
 * compose itself (`docker compose config`); without it (no client, or a client without the compose
 * plugin, as on the project's machines), by this file: YAML with merge keys, then compose's
 * `${NAME:-default}` interpolation. Every assertion runs on the resolved model either way.
 *
 * What each process needs is read from the processes themselves: the shared schemas of
 * lib/config.ts an entrypoint uses, plus the variables it declares, restricted to .env.example's
 * keys (the documented configuration). A variable added to a process and .env.example but not to
 * its compose service fails here.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');

// --------------------------------------------------------------------------------------------
// The resolved compose model (what `docker compose config` prints), from compose or from here.

interface Volume {
  source: string;
  target: string;
  readOnly: boolean;
}

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command: string[];
  entrypoint: string[];
  environment: Record<string, string>;
  ports: Array<{ target: number; published?: string }>;
  healthcheck?: { test: string[] };
  dependsOn: Record<string, string>;
  restart?: string;
  volumes: Volume[];
  workingDir?: string;
}

interface Model {
  services: Record<string, Service>;
  volumes: string[];
}

function hasDockerCompose(): boolean {
  const which = spawnSync('which', ['docker'], { encoding: 'utf8' });
  if (which.status !== 0) return false;
  // The client alone is not enough: `docker compose` is a plugin (absent on the project's machines).
  return spawnSync('docker', ['compose', 'version'], { encoding: 'utf8', timeout: 20_000 }).status === 0;
}

const COMPOSE = hasDockerCompose();

/** A clean environment: nothing of this machine's or the test runner's leaks into interpolation. */
function cleanEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME ?? tmpdir() };
}

function runCompose(envFile: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('docker', ['compose', '--env-file', envFile, '-f', COMPOSE_FILE, ...args], {
    cwd: ROOT,
    env: cleanEnv(),
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/** KEY=value lines, as compose and dotenv read them (comments and blank lines skipped, quotes removed). */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!match) continue;
    let value = match[2] ?? '';
    if (/^(['"]).*\1$/.test(value)) value = value.slice(1, -1);
    env[match[1] as string] = value;
  }
  return env;
}

const VARIABLE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

/** Compose's interpolation: $$, $NAME, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, ${NAME:+alt}. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(VARIABLE, (whole, name: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
    if (whole === '$$') return '$';
    const key = (name ?? bare) as string;
    const given = env[key];
    if (!op) return given ?? '';
    const unset = given === undefined || (op.startsWith(':') && given === '');
    switch (op.replace(':', '')) {
      case '-':
        return unset ? (arg ?? '') : (given as string);
      case '+':
        return unset ? '' : (arg ?? '');
      default: // '?'
        if (unset) throw new Error(`${key} is required: ${arg}`);
        return given as string;
    }
  });
}

function mapValues(node: unknown, f: (value: string) => string): unknown {
  if (typeof node === 'string') return f(node);
  if (Array.isArray(node)) return node.map((item) => mapValues(item, f));
  if (node && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, mapValues(v, f)]));
  return node;
}

function readComposeYaml(): { doc: YAML.Document; data: Record<string, any> } {
  const doc = YAML.parseDocument(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true });
  return { doc, data: doc.toJS({ maxAliasCount: -1 }) as Record<string, any> };
}

const asList = (value: unknown): string[] =>
  value === undefined || value === null ? [] : Array.isArray(value) ? value.map(String) : [String(value)];

/** Short or long syntax, as written in the file or as `docker compose config` prints it. */
function normalize(data: Record<string, any>): Model {
  const services: Record<string, Service> = {};
  for (const [name, s] of Object.entries<Record<string, any>>(data.services ?? {})) {
    const environment: Record<string, string> = {};
    if (Array.isArray(s.environment)) {
      for (const entry of s.environment as string[]) {
        const at = entry.indexOf('=');
        if (at > 0) environment[entry.slice(0, at)] = entry.slice(at + 1);
      }
    } else {
      for (const [k, v] of Object.entries(s.environment ?? {})) environment[k] = v === null || v === undefined ? '' : String(v);
    }
    const ports = (s.ports ?? []).map((p: unknown) => {
      if (typeof p === 'object' && p) {
        const long = p as { target: number | string; published?: number | string };
        return { target: Number(long.target), published: long.published === undefined ? undefined : String(long.published) };
      }
      const parts = String(p).split(':');
      return { target: Number(parts[parts.length - 1]), published: parts.length > 1 ? parts[parts.length - 2] : undefined };
    });
    const volumes = (s.volumes ?? []).map((v: unknown): Volume => {
      if (typeof v === 'object' && v) {
        const long = v as { source: string; target: string; read_only?: boolean };
        return { source: long.source, target: long.target, readOnly: Boolean(long.read_only) };
      }
      const [source = '', target = '', mode = ''] = String(v).split(':');
      return { source, target, readOnly: mode.split(',').includes('ro') };
    });
    const dependsOn: Record<string, string> = {};
    if (Array.isArray(s.depends_on)) for (const dep of s.depends_on as string[]) dependsOn[dep] = 'service_started';
    else for (const [dep, v] of Object.entries<{ condition?: string }>(s.depends_on ?? {})) dependsOn[dep] = v?.condition ?? 'service_started';
    services[name] = {
      image: s.image,
      build: typeof s.build === 'string' ? { context: s.build } : s.build,
      command: asList(s.command),
      entrypoint: asList(s.entrypoint),
      environment,
      ports,
      healthcheck: s.healthcheck?.test ? { test: asList(s.healthcheck.test) } : undefined,
      dependsOn,
      restart: s.restart === undefined ? undefined : String(s.restart),
      volumes,
      workingDir: s.working_dir,
    };
  }
  return { services, volumes: Object.keys(data.volumes ?? {}) };
}

/** The stack as it would run with `envFileText` as its `.env` (and nothing else in the environment). */
function resolve(envFileText = ''): Model {
  if (COMPOSE) {
    const dir = mkdtempSync(path.join(tmpdir(), 'compose-env-'));
    try {
      const envFile = path.join(dir, '.env');
      writeFileSync(envFile, envFileText);
      const out = runCompose(envFile, ['config']);
      if (out.status !== 0) throw new Error(`docker compose config failed:\n${out.stderr}`);
      // `config` may print escaped dollars as `$$` (so that its output is a compose file again).
      return normalize(mapValues(YAML.parse(out.stdout), (value) => value.replace(/\$\$/g, '$')) as Record<string, any>);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const env = parseEnvFile(envFileText);
  const { data } = readComposeYaml();
  return normalize(mapValues(data, (value) => interpolate(value, env)) as Record<string, any>);
}

// --------------------------------------------------------------------------------------------
// What the processes read.

const ENV_EXAMPLE = parseEnvFile(readFileSync(path.join(ROOT, '.env.example'), 'utf8'));

const SHARED_SCHEMAS: Record<string, { shape: Record<string, unknown> }> = {
  commonEnv,
  databaseEnv,
  redisEnv,
  kafkaEnv,
  cognitoEnv,
  callerEnv,
  lifecycleEnv,
  hostEnv,
};

/** Compose service -> the entry file its command runs. */
const ENTRIES: Record<string, string> = {
  gateway: 'gateway/main.ts',
  auth: 'subgraphs/auth/main.ts',
  tenant: 'subgraphs/tenant/main.ts',
  location: 'subgraphs/location/main.ts',
  bridge: 'bridge/main.ts',
  migrate: 'tools/migrate.ts',
};

const PROCESSES = ['gateway', 'auth', 'tenant', 'location', 'bridge'];
const HTTP_PORTS: Record<string, [string, number]> = {
  gateway: ['GATEWAY_PORT', 4000],
  auth: ['AUTH_PORT', 4001],
  tenant: ['TENANT_PORT', 4002],
  location: ['LOCATION_PORT', 4003],
  bridge: ['BRIDGE_PORT', 4004],
};
const INFRASTRUCTURE = ['postgres', 'redis', 'kafka', 'kafka-init', 'cognito', 'cognito-init', 'migrate'];
const ONE_SHOT = ['kafka-init', 'cognito-init', 'migrate'];

/** The variables an entrypoint reads: the shared schemas it uses and the ones it declares itself. */
function variablesRead(entry: string): Set<string> {
  const source = readFileSync(path.join(ROOT, entry), 'utf8');
  const names = new Set<string>();
  for (const [schemaName, schema] of Object.entries(SHARED_SCHEMAS)) {
    if (new RegExp(`\\b${schemaName}\\b`).test(source)) for (const key of Object.keys(schema.shape)) names.add(key);
  }
  // `NAME: z.…`, `NAME: ports.…`, `NAME: nonNegativeInt(…)`, `NAME: url(…)`, `NAME: port(…)`.
  for (const match of source.matchAll(/\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\s*:\s*(?:z\.|ports\.|port\(|nonNegativeInt\(|url\()/g)) {
    names.add(match[1] as string);
  }
  return names;
}

/** With cognito-local, these four come from cognito-init's file (see the entrypoint in docker-compose.yml). */
const FROM_COGNITO_INIT = ['COGNITO_USER_POOL_ID', 'COGNITO_CLIENT_ID', 'COGNITO_ENDPOINT', 'COGNITO_ISSUER'];
/** Optional and empty by default in .env.example too. */
const MAY_BE_EMPTY = ['SUPERGRAPH_PATH'];

const healthUrl = (service: Service) => /https?:\/\/[^'"\s]+\/health/.exec(service.healthcheck?.test.join(' ') ?? '')?.[0];

/**
 * The `.env` of a local try-out, as README.md ("docker-compose") has one written: the secrets the
 * stack requires, and the emulator allowed.
 */
const TRY_OUT_ENV = [
  'CALLER_SIGNING_SECRET=WmU3b1FkT2x2c1BqY1JmS3hQa0Z4b2VZb3B3bVdSbXJhZ0Z1',
  'ADMIN_PASSWORD=try-out-admin-password',
  'POSTGRES_PASSWORD=tryoutpostgres',
  'FLEET_APP_PASSWORD=tryoutfleetapp',
  'ALLOW_COGNITO_EMULATOR=true',
  '',
].join('\n');
const REQUIRED_SECRETS = ['CALLER_SIGNING_SECRET', 'ADMIN_PASSWORD', 'POSTGRES_PASSWORD', 'FLEET_APP_PASSWORD'];

// --------------------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  const model = resolve(TRY_OUT_ENV);
  const service = (name: string): Service => {
    const found = model.services[name];
    if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
    return found;
  };

  it(COMPOSE ? 'is accepted by `docker compose config --quiet`' : 'parses as YAML and is internally consistent (no Docker Compose here)', () => {
    if (COMPOSE) {
      const dir = mkdtempSync(path.join(tmpdir(), 'compose-env-'));
      try {
        writeFileSync(path.join(dir, 'tryout.env'), TRY_OUT_ENV);
        const out = runCompose(path.join(dir, 'tryout.env'), ['config', '--quiet']);
        if (out.status !== 0) throw new Error(`docker compose config --quiet failed (${out.status}):\n${out.stderr}`);
        expect(out.stderr).not.toMatch(/variable is not set/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    } else {
      const { doc, data } = readComposeYaml();
      expect(doc.errors.map(String)).toEqual([]);
      expect(doc.warnings.map(String)).toEqual([]);
      const topLevel = Object.keys(data).filter((key) => !key.startsWith('x-'));
      expect(topLevel.every((key) => ['name', 'services', 'volumes', 'networks', 'configs', 'secrets'].includes(key))).toBe(true);
    }
    // Whoever resolved it: every service has something to run, every dependency and named volume
    // exists, and the start order has no cycle.
    for (const [name, s] of Object.entries(model.services)) {
      expect({ name, runnable: Boolean(s.image || s.build) }).toEqual({ name, runnable: true });
      for (const dep of Object.keys(s.dependsOn)) expect(Object.keys(model.services)).toContain(dep);
      for (const volume of s.volumes) if (!volume.source.startsWith('.') && !volume.source.startsWith('/')) expect(model.volumes).toContain(volume.source);
    }
    const order: string[] = [];
    const visiting = new Set<string>();
    const visit = (name: string) => {
      if (order.includes(name)) return;
      if (visiting.has(name)) throw new Error(`depends_on cycle through ${name}`);
      visiting.add(name);
      for (const dep of Object.keys(service(name).dependsOn)) visit(dep);
      visiting.delete(name);
      order.push(name);
    };
    for (const name of Object.keys(model.services)) visit(name);
    expect(order.indexOf('gateway')).toBeGreaterThan(order.indexOf('auth'));
  });

  it('requires the secrets (never the examples) and has a default for every other variable', () => {
    const text = readFileSync(COMPOSE_FILE, 'utf8').replace(/^\s*#.*$/gm, '');
    // (`$$` is an escaped dollar: what follows it is the container shell's, not compose's.)
    const used = [...text.matchAll(VARIABLE)].filter((match) => match[0] !== '$$');
    const withoutDefault = used.filter((match) => !match[2]).map((match) => match[0]);
    expect(withoutDefault).toEqual([]);
    const required = new Set(used.filter((match) => match[2]?.includes('?')).map((match) => match[1]));
    expect([...required].sort()).toEqual([...REQUIRED_SECRETS].sort());
    // Without a .env it refuses to resolve, naming what is missing.
    expect(() => resolve('')).toThrow(/CALLER_SIGNING_SECRET|ADMIN_PASSWORD|POSTGRES_PASSWORD|FLEET_APP_PASSWORD/);
  });

  it('runs the processes as production: NODE_ENV fixed, secrets from .env, the emulator only when allowed', () => {
    for (const name of [...PROCESSES, 'migrate', 'cognito-init']) {
      expect({ name, NODE_ENV: service(name).environment.NODE_ENV }).toEqual({ name, NODE_ENV: 'production' });
    }
    // A copy of .env.example as .env cannot switch production off.
    const fromExample = resolve(`${readFileSync(path.join(ROOT, '.env.example'), 'utf8')}\nNODE_ENV=development\n`);
    for (const name of PROCESSES) expect(fromExample.services[name]?.environment.NODE_ENV).toBe('production');
    expect(service('auth').environment.ADMIN_PASSWORD).toBe('try-out-admin-password');
    expect(service('auth').environment.ADMIN_PASSWORD).not.toBe(EXAMPLE_SECRETS.ADMIN_PASSWORD);
    for (const name of ['gateway', 'auth', 'tenant']) {
      expect({ name, allowed: service(name).environment.ALLOW_COGNITO_EMULATOR }).toEqual({ name, allowed: 'true' });
      expect(resolve(TRY_OUT_ENV.replace('ALLOW_COGNITO_EMULATOR=true', '')).services[name]?.environment.ALLOW_COGNITO_EMULATOR).toBe('false');
    }
  });

  it('binds the processes to the container network, the gateway metrics to an unpublished port', () => {
    for (const name of PROCESSES) {
      expect({ name, HOST: service(name).environment.HOST, stdin: service(name).environment.STOP_WHEN_STDIN_CLOSES }).toEqual({ name, HOST: '0.0.0.0', stdin: 'false' });
    }
    const gateway = service('gateway');
    expect(gateway.environment.GATEWAY_HOST).toBe('0.0.0.0');
    expect(gateway.environment.GATEWAY_METRICS_PORT).toBe('4005');
    expect(gateway.ports.map((p) => p.target)).not.toContain(4005);
  });

  it('declares the five processes and the infrastructure', () => {
    const names = COMPOSE
      ? (() => {
          const dir = mkdtempSync(path.join(tmpdir(), 'compose-env-'));
          try {
            writeFileSync(path.join(dir, 'none.env'), '');
            const out = runCompose(path.join(dir, 'none.env'), ['config', '--services']);
            expect(out.status).toBe(0);
            return out.stdout.split('\n').filter(Boolean);
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        })()
      : Object.keys(model.services);
    expect([...names].sort()).toEqual([...PROCESSES, ...INFRASTRUCTURE].sort());
  });

  it('runs each process from the project image with tsx and its entry file', () => {
    for (const [name, entry] of Object.entries(ENTRIES)) {
      const s = service(name);
      expect({ name, build: s.build?.context }).toEqual({ name, build: expect.stringMatching(/^(\.|\/.+)$/) });
      // Node itself with tsx's loader: the tsx CLI would run the process as its own child.
      expect({ name, command: s.command }).toEqual({ name, command: ['node', '--import', 'tsx', entry] });
    }
    expect(service('cognito-init').command).toEqual(['node', '--import', 'tsx', 'tools/cognito-local/init-pool.ts']);
    // One image for all of them.
    expect(new Set([...Object.keys(ENTRIES), 'cognito', 'cognito-init'].map((name) => service(name).image)).size).toBe(1);
  });

  it("publishes only the gateway's port", () => {
    const published = Object.entries(model.services)
      .filter(([, s]) => s.ports.length > 0)
      .map(([name, s]) => ({ name, ports: s.ports }));
    expect(published).toEqual([{ name: 'gateway', ports: [{ target: 4000, published: '4000' }] }]);
  });

  it('checks the health of every long-running service; the processes on GET /health of their own port', () => {
    for (const name of PROCESSES) {
      const s = service(name);
      const [portVariable, port] = HTTP_PORTS[name] as [string, number];
      expect({ name, port: s.environment[portVariable] }).toEqual({ name, port: String(port) });
      expect({ name, url: healthUrl(s) }).toEqual({ name, url: `http://127.0.0.1:${port}/health` });
    }
    expect(service('cognito').healthcheck?.test.join(' ')).toContain('http://127.0.0.1:9229/health');
    expect(service('postgres').healthcheck?.test.join(' ')).toMatch(/pg_isready/);
    expect(service('redis').healthcheck?.test.join(' ')).toMatch(/redis-cli ping/);
    expect(service('kafka').healthcheck?.test.join(' ')).toMatch(/kafka-broker-api-versions\.sh --bootstrap-server localhost:9092/);
  });

  it('starts in order: infrastructure healthy, one-shots completed, subgraphs healthy before the gateway', () => {
    const deps = (name: string) => service(name).dependsOn;
    expect(deps('migrate')).toEqual({ postgres: 'service_healthy' });
    expect(deps('kafka-init')).toEqual({ kafka: 'service_healthy' });
    expect(deps('cognito-init')).toEqual({ cognito: 'service_healthy' });
    expect(deps('auth')).toEqual({ migrate: 'service_completed_successfully', redis: 'service_healthy', 'cognito-init': 'service_completed_successfully' });
    expect(deps('tenant')).toEqual({ migrate: 'service_completed_successfully', redis: 'service_healthy', 'cognito-init': 'service_completed_successfully' });
    expect(deps('location')).toEqual({
      migrate: 'service_completed_successfully',
      redis: 'service_healthy',
      'kafka-init': 'service_completed_successfully',
    });
    expect(deps('bridge')).toEqual({ migrate: 'service_completed_successfully', redis: 'service_healthy', 'kafka-init': 'service_completed_successfully' });
    expect(deps('gateway')).toEqual({
      migrate: 'service_completed_successfully',
      'cognito-init': 'service_completed_successfully',
      redis: 'service_healthy',
      auth: 'service_healthy',
      tenant: 'service_healthy',
      location: 'service_healthy',
    });
  });

  it('restarts long-running services and never the one-shots', () => {
    for (const [name, s] of Object.entries(model.services)) {
      const expected = ONE_SHOT.includes(name) ? 'no' : 'unless-stopped';
      expect({ name, restart: s.restart }).toEqual({ name, restart: expected });
    }
  });

  describe('every variable the processes read', () => {
    it.each(Object.keys(ENTRIES))('is documented in .env.example and set for %s', (name) => {
      const entry = ENTRIES[name] as string;
      const read = variablesRead(entry);
      expect(read.size).toBeGreaterThan(0);
      // Documented: every variable the process reads is in .env.example (CONTRACT.md, Configuration).
      expect([...read].filter((key) => !(key in ENV_EXAMPLE))).toEqual([]);

      const s = service(name);
      const missing = [...read].filter((key) => !(key in s.environment));
      expect({ service: name, missing }).toEqual({ service: name, missing: [] });

      const empty = [...read].filter((key) => s.environment[key] === '' && !MAY_BE_EMPTY.includes(key));
      for (const key of empty) {
        // Only the Cognito settings may be empty here: cognito-init's file provides them.
        expect({ service: name, key, providedByCognitoInit: FROM_COGNITO_INIT.includes(key) }).toEqual({
          service: name,
          key,
          providedByCognitoInit: true,
        });
      }
      if (empty.length > 0) {
        const idsFile = service('cognito-init').environment.COGNITO_IDS_FILE as string;
        expect(s.entrypoint.join('\n')).toContain(path.posix.dirname(idsFile));
        expect(s.volumes).toContainEqual({ source: 'cognito-ids', target: path.posix.dirname(idsFile), readOnly: true });
      }
    });

    it('agrees between the gateway and the subgraphs where it must', () => {
      const secrets = ['gateway', 'auth', 'tenant', 'location'].map((name) => service(name).environment.CALLER_SIGNING_SECRET);
      expect(new Set(secrets).size).toBe(1);
      expect((secrets[0] ?? '').length).toBeGreaterThanOrEqual(32);
      const prefixes = ['gateway', 'tenant', 'location', 'bridge'].map((name) => service(name).environment.REDIS_PREFIX);
      expect(new Set(prefixes).size).toBe(1);
      const topics = ['location', 'bridge'].map((name) => service(name).environment.KAFKA_TOPIC);
      expect(new Set(topics).size).toBe(1);
    });
  });

  it("points the processes at this stack's services", () => {
    for (const name of ['gateway', 'auth', 'tenant', 'location', 'bridge']) {
      const url = new URL(service(name).environment.APP_DATABASE_URL as string);
      expect({ name, host: url.host, user: url.username, db: url.pathname }).toEqual({ name, host: 'postgres:5432', user: 'fleet_app', db: '/fleet' });
    }
    const owner = new URL(service('migrate').environment.DATABASE_URL as string);
    expect({ host: owner.host, user: owner.username, db: owner.pathname }).toEqual({ host: 'postgres:5432', user: 'postgres', db: '/fleet' });
    expect(owner.password).toBe(service('postgres').environment.POSTGRES_PASSWORD);
    expect(new URL(service('migrate').environment.APP_DATABASE_URL as string).password).toBe(
      new URL(service('gateway').environment.APP_DATABASE_URL as string).password,
    );
    for (const name of ['gateway', 'tenant', 'location', 'bridge']) expect(service(name).environment.REDIS_URL).toBe('redis://redis:6379');
    const advertised = service('kafka').environment.KAFKA_ADVERTISED_LISTENERS as string;
    for (const name of ['location', 'bridge']) {
      const brokers = service(name).environment.KAFKA_BROKERS as string;
      expect(brokers).toBe('kafka:9092');
      expect(advertised).toContain(`PLAINTEXT://${brokers}`);
    }
    const gateway = service('gateway').environment;
    for (const [subgraph, variable] of [
      ['auth', 'AUTH_URL'],
      ['tenant', 'TENANT_URL'],
      ['location', 'LOCATION_URL'],
    ] as const) {
      const port = service(subgraph).environment[(HTTP_PORTS[subgraph] as [string, number])[0]];
      expect(gateway[variable]).toBe(`http://${subgraph}:${port}/graphql`);
    }
  });

  it('runs a real Kafka in KRaft mode without topic auto-creation, topics made by kafka-init', () => {
    const kafka = service('kafka');
    expect(kafka.image).toMatch(/^apache\/kafka:/);
    expect(kafka.environment.KAFKA_PROCESS_ROLES).toBe('broker,controller');
    expect(kafka.environment.KAFKA_CONTROLLER_QUORUM_VOTERS).toBe('1@kafka:9093');
    expect(kafka.environment.KAFKA_AUTO_CREATE_TOPICS_ENABLE).toBe('false');
    expect(kafka.environment.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR).toBe('1');
    expect(kafka.volumes.map((v) => v.target)).toContain(kafka.environment.KAFKA_LOG_DIRS);

    const topic = service('location').environment.KAFKA_TOPIC as string;
    const init = service('kafka-init');
    expect(init.image).toBe(kafka.image);
    const script = [...init.entrypoint, ...init.command].join(' ');
    expect(script).toMatch(new RegExp(`kafka-topics\\.sh --bootstrap-server kafka:9092 --create --if-not-exists --topic "${topic}" --partitions "12"`));
    expect(script).toMatch(new RegExp(`--create --if-not-exists --topic "${topic}\\.dlq"`));
  });

  it('runs cognito-local with the issuer the services require, and hands its pool to them', () => {
    const cognito = service('cognito');
    const script = [...cognito.entrypoint, ...cognito.command].join('\n');
    const config = JSON.parse(/'(\{.*\})'\s*>\s*\.cognito\/config\.json/.exec(script)?.[1] ?? 'null') as {
      ServerConfig: { hostname: string; port: number };
      TokenConfig: { IssuerDomain: string };
    };
    expect(config.ServerConfig).toMatchObject({ hostname: '0.0.0.0', port: 9229 });
    expect(config.TokenConfig.IssuerDomain).toBe('http://cognito:9229');
    expect(script).toContain('node_modules/cognito-local/lib/bin/start.js');
    expect(cognito.volumes).toContainEqual({ source: 'cognito-local', target: cognito.workingDir, readOnly: false });

    const init = service('cognito-init').environment;
    expect(init.COGNITO_ENDPOINT).toBe('http://cognito:9229');
    expect(init.COGNITO_ISSUER_DOMAIN).toBe(config.TokenConfig.IssuerDomain);
    const idsDir = path.posix.dirname(init.COGNITO_IDS_FILE as string);
    expect(service('cognito-init').volumes).toContainEqual({ source: 'cognito-ids', target: idsDir, readOnly: false });
    for (const name of ['auth', 'tenant', 'gateway']) {
      const s = service(name);
      expect(s.volumes).toContainEqual({ source: 'cognito-ids', target: idsDir, readOnly: true });
      // Taken from the file only when no real pool is configured.
      expect(s.entrypoint.join('\n')).toContain(`ids=${init.COGNITO_IDS_FILE}`);
      expect(s.entrypoint.join('\n')).toMatch(/if \[ -z "\$\{COGNITO_USER_POOL_ID:-\}" \] && \[ -r "\$ids" \]; then set -a; \. "\$ids"; set \+a; fi\nexec "\$@"/);
    }
  });

  it('entrypoint of the processes: loads the ids file only when no pool is configured, then runs the command', () => {
    const script = service('gateway').entrypoint;
    expect(script.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    const dir = mkdtempSync(path.join(tmpdir(), 'compose-entrypoint-'));
    try {
      const idsFile = service('cognito-init').environment.COGNITO_IDS_FILE as string;
      const localFile = path.join(dir, 'cognito.env');
      writeFileSync(localFile, "COGNITO_USER_POOL_ID='local_fromfile'\nCOGNITO_ISSUER='http://cognito:9229/local_fromfile'\n");
      const body = (script[2] as string).split(idsFile).join(localFile);
      const run = (env: Record<string, string>) =>
        spawnSync('/bin/sh', ['-c', body, 'fleet-entrypoint', 'sh', '-c', 'echo "$COGNITO_USER_POOL_ID|$COGNITO_ISSUER"'], {
          env: { PATH: process.env.PATH, ...env },
          encoding: 'utf8',
        }).stdout.trim();
      expect(run({ COGNITO_USER_POOL_ID: '', COGNITO_ISSUER: '' })).toBe('local_fromfile|http://cognito:9229/local_fromfile');
      expect(run({ COGNITO_USER_POOL_ID: 'eu-west-1_real', COGNITO_ISSUER: '' })).toBe('eu-west-1_real|');
      rmSync(localFile);
      expect(run({ COGNITO_USER_POOL_ID: '' })).toBe('|');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes overrides from .env, but not the 127.0.0.1 addresses of .env.example', () => {
    const overridden = resolve(
      [
        readFileSync(path.join(ROOT, '.env.example'), 'utf8'),
        'LOG_LEVEL=debug',
        'GATEWAY_PORT=4100',
        'KAFKA_TOPIC=positions',
        'CALLER_SIGNING_SECRET=an-operator-generated-secret-of-enough-length',
        'AWS_REGION=eu-west-1',
        'COGNITO_USER_POOL_ID=eu-west-1_AbCdEf123',
        'COGNITO_CLIENT_ID=1example23456789',
        'ADMIN_EMAIL=ops@example.com',
        'FLEET_APP_PASSWORD=app-secret',
        '',
      ].join('\n'),
    );
    const s = (name: string) => overridden.services[name] as Service;
    expect(s('gateway').ports).toEqual([{ target: 4000, published: '4100' }]);
    expect(s('gateway').environment.GATEWAY_PORT).toBe('4000');
    for (const name of PROCESSES) expect({ name, level: s(name).environment.LOG_LEVEL }).toEqual({ name, level: 'debug' });
    for (const name of ['location', 'bridge']) expect(s(name).environment.KAFKA_TOPIC).toBe('positions');
    expect([...s('kafka-init').entrypoint, ...s('kafka-init').command].join(' ')).toContain('--topic "positions.dlq"');
    for (const name of ['gateway', 'auth', 'tenant']) {
      expect(s(name).environment).toMatchObject({
        AWS_REGION: 'eu-west-1',
        COGNITO_USER_POOL_ID: 'eu-west-1_AbCdEf123',
        COGNITO_CLIENT_ID: '1example23456789',
        COGNITO_ENDPOINT: '',
        CALLER_SIGNING_SECRET: 'an-operator-generated-secret-of-enough-length',
      });
    }
    expect(s('auth').environment.ADMIN_EMAIL).toBe('ops@example.com');
    // .env.example's DATABASE_URL/REDIS_URL/... point at 127.0.0.1: inside a container, itself.
    expect(s('gateway').environment.APP_DATABASE_URL).toBe('postgresql://fleet_app:app-secret@postgres:5432/fleet');
    expect(s('migrate').environment.DATABASE_URL).toBe('postgresql://postgres:postgres@postgres:5432/fleet');
    expect(s('location').environment.KAFKA_BROKERS).toBe('kafka:9092');
    expect(s('bridge').environment.REDIS_URL).toBe('redis://redis:6379');
    expect(s('gateway').environment.AUTH_URL).toBe('http://auth:4001/graphql');
    // .env.example's HOST=127.0.0.1 is for processes outside a container.
    for (const name of PROCESSES) expect(s(name).environment.HOST).toBe('0.0.0.0');
  });
});

describe('Dockerfile and .dockerignore', () => {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));

  it('builds on node 20 (bookworm-slim) with npm ci, generates the Prisma client and runs as a non-root user', () => {
    expect(dockerfile).toMatch(/node:20-bookworm-slim/);
    const from = instructions.filter((line) => /^FROM\s/i.test(line));
    expect(from).toHaveLength(1);
    expect(instructions.some((line) => /^RUN .*\bnpm ci\b/.test(line))).toBe(true);
    expect(instructions.some((line) => /^RUN .*node tools\/prisma-generate\.mjs/.test(line))).toBe(true);
    // The lock file is copied (and installed from) before the source.
    const copyLock = instructions.findIndex((line) => /^COPY .*package-lock\.json/.test(line));
    const copyAll = instructions.findIndex((line) => /^COPY \. \./.test(line));
    expect(copyLock).toBeGreaterThanOrEqual(0);
    expect(copyLock).toBeLessThan(copyAll);
    const user = instructions.filter((line) => /^USER\s/i.test(line)).pop();
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^USER\s+(root|0)(:|\s|$)/);
    expect(instructions.at(-1)).toMatch(/^CMD \["node", "--import", "tsx", "[a-z/]+main\.ts"\]$/);
    // Production, but only after `npm ci`, which needs the devDependencies.
    const production = instructions.findIndex((line) => /^ENV .*\bNODE_ENV=production\b/.test(line));
    const install = instructions.findIndex((line) => /^RUN .*\bnpm ci\b/.test(line));
    expect(production).toBeGreaterThan(install);
  });

  it('keeps local state, secrets and installed modules out of the build context', () => {
    const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'));
    for (const entry of ['node_modules', 'generated', '.env', '.git', '.local']) expect(ignored).toContain(entry);
    expect(ignored).toContain('!.env.example');
  });
});

describe('cognito-init (tools/cognito-local/init-pool.ts)', () => {
  // The cognito-local of jest's globalSetup; its tokens' issuer is its own endpoint.
  const endpoint = process.env.TEST_COGNITO_ENDPOINT as string;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'cognito-init-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the pool once, writes its ids, and finds the same pool again', async () => {
    expect(endpoint).toMatch(/^http:\/\//);
    const poolName = `compose-init-${process.pid}-${Date.now()}`;
    const file = path.join(dir, 'ids', 'cognito.env');

    const first = await initPool({ endpoint, poolName, previous: await readIdsFile(file) });
    expect(first.created).toEqual({ pool: true, client: true });
    expect(first.issuer).toBe(`${endpoint}/${first.userPoolId}`);
    await writeIdsFile(file, first);
    const written = parseEnvFile(readFileSync(file, 'utf8'));
    expect(written).toEqual({
      COGNITO_USER_POOL_ID: first.userPoolId,
      COGNITO_CLIENT_ID: first.clientId,
      COGNITO_ENDPOINT: endpoint,
      COGNITO_ISSUER: first.issuer,
    });

    const again = await initPool({ endpoint, poolName, previous: await readIdsFile(file) });
    expect(again).toMatchObject({ userPoolId: first.userPoolId, clientId: first.clientId, created: { pool: false, client: false } });
    // The file lost (a new cognito-ids volume): found by name.
    const byName = await initPool({ endpoint, poolName });
    expect(byName).toMatchObject({ userPoolId: first.userPoolId, clientId: first.clientId, created: { pool: false, client: false } });
  });

  it('refuses an emulator whose tokens carry another issuer than the services would require', async () => {
    await expect(initPool({ endpoint, poolName: `compose-init-iss-${process.pid}`, issuerDomain: 'http://cognito:9229' })).rejects.toThrow(
      /issues tokens with iss .* but the services would require "http:\/\/cognito:9229\//,
    );
  });
});
