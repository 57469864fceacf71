/**
 * Starts cognito-local (a Cognito user-pool emulator, npm devDependency) as a child process and
 * makes sure it holds a user pool and app client shaped like the real one: custom attributes
 * `tenant_id` and `role`, email as the username and verified by a code (AutoVerifiedAttributes),
 * USER_PASSWORD_AUTH + REFRESH_TOKEN_AUTH, no secret. Codes land in a mailbox file and are
 * announced through `onMail` (see emulatorExtensions.cjs).
 *
 * Development and tests only: cognito-local signs every token with a private key that ships inside
 * its npm package (see README.md next to this file).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AUTH_FLOWS, CUSTOM_ATTRIBUTES, POOL_SETTINGS, appClientSettings, isNotFound, poolRepair } from './poolSchema';
import {
  AddCustomAttributesCommand,
  CognitoIdentityProviderClient,
  CreateUserPoolClientCommand,
  CreateUserPoolCommand,
  DescribeUserPoolClientCommand,
  DescribeUserPoolCommand,
  UpdateUserPoolClientCommand,
  UpdateUserPoolCommand,
  type UserPoolClientType,
} from '@aws-sdk/client-cognito-identity-provider';

export interface CognitoLocalOptions {
  /** 0 or undefined: pick a free port on 127.0.0.1. */
  port?: number;
  /** Where cognito-local keeps its state (`.cognito/` in this folder). Default: a fresh temp dir, removed on stop. */
  dataDir?: string;
  /** Region the SDK client is configured with. cognito-local ignores it (its pool ids are always `local_…`). Default 'us-east-1'. */
  region?: string;
  /** Default 'fleet'. */
  poolName?: string;
  /** ID-token lifetime of the default app client. Default 3600. */
  idTokenValiditySeconds?: number;
}

/** A message the emulator "sent" (a confirmation code), as its mailbox holds it. */
export interface Mail {
  /** ISO-8601 time of delivery. */
  at: string;
  /** The address (or phone number) it went to. */
  to: string;
  code: string;
  /** The pool's username of the recipient (its `sub`, email being an alias). */
  username: string;
}

export interface CognitoLocal {
  /** e.g. http://127.0.0.1:PORT — what `endpoint` of the AWS SDK client should be. */
  readonly endpoint: string;
  readonly region: string;
  readonly userPoolId: string;
  readonly clientId: string;
  /** Exactly the `iss` claim of its tokens: `http://127.0.0.1:PORT/<userPoolId>`. */
  readonly issuer: string;
  /** `${issuer}/.well-known/jwks.json` (served over plain http). */
  readonly jwksUri: string;
  /**
   * The emulator's mailbox: one JSON `Mail` per line, appended before the API call that sent it
   * answers (so a caller that got the answer finds the code there). In `dataDir`.
   */
  readonly mailbox: string;
  /** Calls `listener` for every message sent from now on; returns the unsubscribe function. */
  onMail(listener: (mail: Mail) => void): () => void;
  /** A new app client in the same pool; returns its client id. */
  createAppClient(options: { name: string; idTokenValiditySeconds?: number }): Promise<string>;
  /** Another pool (same schema) with one app client, e.g. for wrong-issuer tests. */
  createUserPool(name: string): Promise<{ userPoolId: string; clientId: string }>;
  /** Resolves when the process has exited; idempotent. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
const MAX_PORT_ATTEMPTS = 5;
const OUTPUT_LIMIT = 64 * 1024;
const IDS_FILE = 'fleet-ids.json';
const MAILBOX_FILE = 'mailbox.jsonl';
/** Adds the mailbox and ResendConfirmationCode to cognito-local; see the file. */
const EXTENSIONS = path.join(__dirname, 'emulatorExtensions.cjs');
/** How the extensions announce a message on stdout. */
const MAIL_MARKER = 'FLEET_MAIL ';

/**
 * Loaded by the child with `--import` before cognito-local: it exits when the parent's end of its
 * stdin pipe closes, i.e. when the parent dies in any way (even SIGKILL), so it never lingers.
 */
const PARENT_WATCHDOG = [
  'const quit = () => process.exit(0);',
  'process.stdin.on("end", quit);',
  'process.stdin.on("close", quit);',
  'process.stdin.on("error", quit);',
  'process.stdin.resume();',
].join('\n');

interface StoredIds {
  userPoolId: string;
  clientId: string;
  poolName: string;
}

const stripAnsi = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, '');

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not find a free port'))));
    });
  });
}

class StartError extends Error {
  constructor(
    message: string,
    readonly addressInUse: boolean,
  ) {
    super(message);
    this.name = 'CognitoLocalStartError';
  }
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  output: () => string;
}

/** Reads the extensions' `FLEET_MAIL <json>` lines out of the child's stdout. */
function mailReader(onMail: (mail: Mail) => void): (chunk: Buffer) => void {
  let partial = '';
  return (chunk) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const at = line.indexOf(MAIL_MARKER);
      if (at === -1) continue;
      try {
        onMail(JSON.parse(line.slice(at + MAIL_MARKER.length)) as Mail);
      } catch {
        // not one of ours after all
      }
    }
  };
}

/** Spawns cognito-local on `port` and resolves once it logs that it is listening. */
function spawnCognitoLocal(cwd: string, port: number, mailbox: string, onMail: (mail: Mail) => void): Promise<Running> {
  const startJs = path.join(path.dirname(require.resolve('cognito-local/package.json')), 'lib/bin/start.js');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    HOST,
    // cognito-local runs on aws-sdk v2, which prints an end-of-support NOTE on start.
    AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1',
    FLEET_COGNITO_MAILBOX: mailbox,
  };
  delete env.DEBUG; // DEBUG=anything makes cognito-local log every data-store write
  delete env.NODE_OPTIONS; // e.g. jest/tsx loaders meant for the parent, not for this plain-JS child

  const child = spawn(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(PARENT_WATCHDOG)}`, '--require', EXTENSIONS, startJs],
    { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] },
  );

  child.stdin!.on('error', () => {}); // EPIPE once the child is gone: nothing to do
  child.stdout!.on('data', mailReader(onMail));

  let output = '';
  const append = (chunk: Buffer) => {
    output += stripAnsi(chunk.toString('utf8'));
    if (output.length > OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT);
  };
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  return new Promise<Running>((resolve, reject) => {
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdout!.off('data', onReadyCheck);
      child.stderr!.off('data', onReadyCheck);
      child.off('exit', onEarlyExit);
      child.off('error', onSpawnError);
      if (error) {
        child.kill('SIGKILL');
        reject(error);
      } else {
        resolve({ child, exited, output: () => output });
      }
    };
    const onReadyCheck = () => {
      // Logged by lib/bin/start.js once server.listen() has called back.
      const match = /Cognito Local running on (https?):\/\/([^\s:]+):(\d+)/.exec(output);
      if (!match) return;
      if (Number(match[3]) !== port) {
        finish(new StartError(`cognito-local listens on ${match[2]}:${match[3]}, expected ${HOST}:${port}\n${output}`, false));
      } else {
        finish();
      }
    };
    const onEarlyExit = (code: number | null, signal: NodeJS.Signals | null) => {
      finish(
        new StartError(
          `cognito-local exited before it was ready (code ${code}, signal ${signal}); its output:\n${output}`,
          /EADDRINUSE/.test(output),
        ),
      );
    };
    const onSpawnError = (error: Error) =>
      finish(new StartError(`could not start cognito-local: ${error.message}\n${output}`, false));
    const timer = setTimeout(
      () => finish(new StartError(`cognito-local was not ready after ${START_TIMEOUT_MS} ms; its output:\n${output}`, false)),
      START_TIMEOUT_MS,
    );

    // Append first, then check: listeners run in registration order. Keep draining after readiness,
    // or a full pipe would block the child.
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    child.stdout!.on('data', onReadyCheck);
    child.stderr!.on('data', onReadyCheck);
    child.once('exit', onEarlyExit);
    child.once('error', onSpawnError);
  });
}

/**
 * cognito-local reads `.cognito/config.json` (merged over its defaults). The issuer is built from
 * TokenConfig.IssuerDomain, which defaults to `http://${HOST}:${PORT}`; pin it, and the listen
 * address, so that a config left in a reused dataDir cannot make `issuer` lie.
 */
async function writeConfig(dataDir: string, port: number): Promise<void> {
  const dir = path.join(dataDir, '.cognito');
  const file = path.join(dir, 'config.json');
  await mkdir(dir, { recursive: true });
  let config: Record<string, any> = {};
  try {
    config = JSON.parse(await readFile(file, 'utf8')) ?? {};
  } catch {
    // missing or unreadable: start from an empty config
  }
  config.ServerConfig = { ...(config.ServerConfig ?? {}), hostname: HOST, port, https: false };
  config.TokenConfig = { ...(config.TokenConfig ?? {}), IssuerDomain: `http://${HOST}:${port}` };
  await writeFile(file, JSON.stringify(config, null, 2));
}

async function readStoredIds(dataDir: string): Promise<StoredIds | undefined> {
  try {
    const ids = JSON.parse(await readFile(path.join(dataDir, IDS_FILE), 'utf8')) as Partial<StoredIds>;
    if (typeof ids.userPoolId === 'string' && typeof ids.clientId === 'string') {
      return { userPoolId: ids.userPoolId, clientId: ids.clientId, poolName: String(ids.poolName ?? '') };
    }
  } catch {
    // no earlier run
  }
  return undefined;
}


async function createPool(sdk: CognitoIdentityProviderClient, name: string): Promise<string> {
  const out = await sdk.send(
    new CreateUserPoolCommand({
      PoolName: name,
      Schema: CUSTOM_ATTRIBUTES,
      ...POOL_SETTINGS,
    }),
  );
  const id = out.UserPool?.Id;
  if (!id) throw new Error('cognito-local CreateUserPool returned no pool id');
  return id;
}

async function createClient(
  sdk: CognitoIdentityProviderClient,
  userPoolId: string,
  name: string,
  idTokenValiditySeconds: number,
): Promise<string> {
  const out = await sdk.send(
    new CreateUserPoolClientCommand({
      UserPoolId: userPoolId,
      ClientName: name,
      GenerateSecret: false,
      ...appClientSettings(idTokenValiditySeconds),
    }),
  );
  const id = out.UserPoolClient?.ClientId;
  if (!id) throw new Error('cognito-local CreateUserPoolClient returned no client id');
  return id;
}

/** Reuses the pool and client of an earlier run when they still exist, repairing what drifted. */
async function ensurePool(
  sdk: CognitoIdentityProviderClient,
  stored: StoredIds | undefined,
  poolName: string,
  idTokenValiditySeconds: number,
): Promise<{ userPoolId: string; clientId: string }> {
  let userPoolId: string | undefined;
  if (stored && stored.poolName === poolName) {
    try {
      const pool = await sdk.send(new DescribeUserPoolCommand({ UserPoolId: stored.userPoolId }));
      userPoolId = stored.userPoolId;
      const have = new Set((pool.UserPool?.SchemaAttributes ?? []).map((a) => a.Name));
      const missing = CUSTOM_ATTRIBUTES.filter((a) => !have.has(`custom:${a.Name}`));
      if (missing.length) {
        await sdk.send(new AddCustomAttributesCommand({ UserPoolId: userPoolId, CustomAttributes: missing }));
      }
      const repair = poolRepair(pool.UserPool);
      if (repair) await sdk.send(new UpdateUserPoolCommand({ UserPoolId: userPoolId, ...repair }));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
  if (!userPoolId) {
    userPoolId = await createPool(sdk, poolName);
    return { userPoolId, clientId: await createClient(sdk, userPoolId, poolName, idTokenValiditySeconds) };
  }

  let client: UserPoolClientType | undefined;
  if (stored?.userPoolId === userPoolId) {
    try {
      client = (await sdk.send(new DescribeUserPoolClientCommand({ UserPoolId: userPoolId, ClientId: stored.clientId })))
        .UserPoolClient;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
  if (!client?.ClientId) {
    return { userPoolId, clientId: await createClient(sdk, userPoolId, poolName, idTokenValiditySeconds) };
  }
  const drifted =
    client.IdTokenValidity !== idTokenValiditySeconds ||
    client.TokenValidityUnits?.IdToken !== 'seconds' ||
    AUTH_FLOWS.some((flow) => !client!.ExplicitAuthFlows?.includes(flow));
  if (drifted) {
    await sdk.send(
      new UpdateUserPoolClientCommand({
        UserPoolId: userPoolId,
        ClientId: client.ClientId,
        ClientName: client.ClientName,
        ...appClientSettings(idTokenValiditySeconds),
      }),
    );
  }
  return { userPoolId, clientId: client.ClientId };
}

export async function startCognitoLocal(options: CognitoLocalOptions = {}): Promise<CognitoLocal> {
  const region = options.region ?? 'us-east-1';
  const poolName = options.poolName ?? 'fleet';
  const idTokenValiditySeconds = options.idTokenValiditySeconds ?? 3600;
  const ownsDataDir = !options.dataDir;
  const dataDir = options.dataDir
    ? path.resolve(options.dataDir)
    : await mkdtemp(path.join(tmpdir(), 'cognito-local-'));
  await mkdir(dataDir, { recursive: true });

  const mailbox = path.join(dataDir, MAILBOX_FILE);
  const mail = new EventEmitter();
  const deliver = (message: Mail) => mail.emit('mail', message);

  let running: Running | undefined;
  let port = 0;
  try {
    for (let attempt = 1; !running; attempt++) {
      port = options.port || (await freePort(HOST));
      await writeConfig(dataDir, port);
      try {
        running = await spawnCognitoLocal(dataDir, port, mailbox, deliver);
      } catch (error) {
        // A port picked by us can be taken by someone else before the child binds it: pick again.
        const retry = !options.port && error instanceof StartError && error.addressInUse && attempt < MAX_PORT_ATTEMPTS;
        if (!retry) throw error;
      }
    }
  } catch (error) {
    if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
    throw error;
  }

  const { child, exited } = running;
  const killOnExit = () => {
    child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);

  const endpoint = `http://${HOST}:${port}`;
  const sdk = new CognitoIdentityProviderClient({
    endpoint,
    region,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, // cognito-local checks no signature
    maxAttempts: 1,
  });

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      sdk.destroy();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      process.off('exit', killOnExit);
      child.stdin?.destroy();
      if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
    })();
    return stopping;
  };

  let ids: { userPoolId: string; clientId: string };
  try {
    const stored = ownsDataDir ? undefined : await readStoredIds(dataDir);
    ids = await ensurePool(sdk, stored, poolName, idTokenValiditySeconds);
    if (!ownsDataDir) {
      const record: StoredIds = { ...ids, poolName };
      await writeFile(path.join(dataDir, IDS_FILE), JSON.stringify(record, null, 2) + '\n');
    }
  } catch (error) {
    await stop();
    throw new Error(`cognito-local started but setting up the user pool failed: ${(error as Error).message}`, {
      cause: error,
    });
  }

  const issuer = `${endpoint}/${ids.userPoolId}`;
  return {
    endpoint,
    region,
    userPoolId: ids.userPoolId,
    clientId: ids.clientId,
    issuer,
    jwksUri: `${issuer}/.well-known/jwks.json`,
    mailbox,
    onMail(listener) {
      mail.on('mail', listener);
      return () => mail.off('mail', listener);
    },
    createAppClient: ({ name, idTokenValiditySeconds: seconds }) =>
      createClient(sdk, ids.userPoolId, name, seconds ?? idTokenValiditySeconds),
    async createUserPool(name: string) {
      const userPoolId = await createPool(sdk, name);
      return { userPoolId, clientId: await createClient(sdk, userPoolId, name, idTokenValiditySeconds) };
    },
    stop,
  };
}
