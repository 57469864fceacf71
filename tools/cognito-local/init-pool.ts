/**
 * Creates, once, the user pool and app client that the platform uses in a cognito-local that is
 * already running (the `cognito` service of docker-compose.yml), then writes their ids to a file
 * the services read at start: `docker compose up` needs no hand step. Run again, it finds them
 * (by the ids of the earlier run, else by name) and repairs what drifted, so it is idempotent.
 *
 * The pool is shaped like the real one (as in ./index.ts): email as the username, verified by a
 * code (AutoVerifiedAttributes: email), custom attributes `tenant_id` and `role`, one app client
 * without a secret that allows USER_PASSWORD_AUTH and REFRESH_TOKEN_AUTH. Before writing, it logs a throwaway user in and checks that the `iss`
 * of the ID token is the issuer the services will require, so a cognito-local whose
 * `TokenConfig.IssuerDomain` does not match its address fails here rather than at every login.
 *
 *   COGNITO_ENDPOINT=http://localhost:9229 tsx tools/cognito-local/init-pool.ts
 *
 * Environment (all optional):
 *   COGNITO_ENDPOINT                   cognito-local's address            default http://localhost:9229
 *   COGNITO_ISSUER_DOMAIN              its TokenConfig.IssuerDomain       default COGNITO_ENDPOINT
 *   COGNITO_IDS_FILE                   where to write the ids             default .local/cognito-ids.env
 *   COGNITO_POOL_NAME                  pool and client name               default fleet
 *   COGNITO_ID_TOKEN_VALIDITY_SECONDS  ID/access token lifetime           default 3600
 *   AWS_REGION, LOG_LEVEL
 *
 * The file holds COGNITO_USER_POOL_ID, COGNITO_CLIENT_ID, COGNITO_ENDPOINT and COGNITO_ISSUER as
 * `NAME='value'` lines (a shell can source it, dotenv can read it).
 *
 * Development only: cognito-local signs every token with a private key that ships in its npm
 * package (see README.md beside this file). Against real Cognito, create the pool with your
 * infrastructure tooling and set COGNITO_USER_POOL_ID / COGNITO_CLIENT_ID instead.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AUTH_FLOWS, CUSTOM_ATTRIBUTES, POOL_SETTINGS, appClientSettings, isNotFound, poolRepair } from './poolSchema';
import {
  AddCustomAttributesCommand,
  AdminCreateUserCommand,
  AdminDeleteUserCommand,
  AdminSetUserPasswordCommand,
  CognitoIdentityProviderClient,
  CreateUserPoolClientCommand,
  CreateUserPoolCommand,
  DescribeUserPoolClientCommand,
  DescribeUserPoolCommand,
  InitiateAuthCommand,
  ListUserPoolClientsCommand,
  ListUserPoolsCommand,
  UpdateUserPoolClientCommand,
  UpdateUserPoolCommand,
  type UserPoolClientType,
} from '@aws-sdk/client-cognito-identity-provider';
import { z } from 'zod';
import { commonEnv, loadConfig, nonNegativeInt, url } from '../../lib/config';
import { createLogger, type Logger } from '../../lib/logger';

export interface InitPoolOptions {
  endpoint: string;
  /** TokenConfig.IssuerDomain of the emulator; tokens carry `<issuerDomain>/<poolId>`. Default: endpoint. */
  issuerDomain?: string;
  region?: string;
  poolName?: string;
  idTokenValiditySeconds?: number;
  /** Ids of an earlier run (the file this tool writes), tried first. */
  previous?: Partial<PoolIds>;
  /** How long to retry while the emulator does not answer. Default 60 s. */
  waitMs?: number;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

export interface PoolIds {
  userPoolId: string;
  clientId: string;
}

export interface InitPoolResult extends PoolIds {
  endpoint: string;
  /** Exactly the `iss` of the pool's tokens (checked with a real login). */
  issuer: string;
  created: { pool: boolean; client: boolean };
}


const PROBE_USER = 'issuer-check@cognito-init.invalid';

const trimSlash = (value: string) => value.replace(/\/+$/, '');

/** The emulator may still be binding its port when this starts (outside compose): retry a while. */
async function waitForEmulator(endpoint: string, waitMs: number, logger?: Pick<Logger, 'warn'>): Promise<void> {
  const deadline = Date.now() + waitMs;
  let warned = false;
  for (;;) {
    try {
      const response = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(2000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() >= deadline) throw new Error(`cognito-local at ${endpoint} did not answer GET /health within ${waitMs} ms`);
    if (!warned) {
      logger?.warn({ endpoint }, 'waiting for cognito-local');
      warned = true;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function findPool(sdk: CognitoIdentityProviderClient, name: string, previousId?: string): Promise<string | undefined> {
  if (previousId) {
    try {
      await sdk.send(new DescribeUserPoolCommand({ UserPoolId: previousId }));
      return previousId;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
  const pools = [];
  let NextToken: string | undefined;
  do {
    const page = await sdk.send(new ListUserPoolsCommand({ MaxResults: 60, NextToken }));
    pools.push(...(page.UserPools ?? []));
    NextToken = page.NextToken;
  } while (NextToken);
  // The oldest of that name, so that every run settles on the same pool.
  return pools
    .filter((pool) => pool.Name === name && pool.Id)
    .sort((a, b) => (a.CreationDate?.getTime() ?? 0) - (b.CreationDate?.getTime() ?? 0))[0]?.Id;
}

async function findClient(
  sdk: CognitoIdentityProviderClient,
  userPoolId: string,
  name: string,
  previousId?: string,
): Promise<UserPoolClientType | undefined> {
  if (previousId) {
    try {
      const described = await sdk.send(new DescribeUserPoolClientCommand({ UserPoolId: userPoolId, ClientId: previousId }));
      if (described.UserPoolClient?.ClientId) return described.UserPoolClient;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
  const clients = [];
  let NextToken: string | undefined;
  do {
    const page = await sdk.send(new ListUserPoolClientsCommand({ UserPoolId: userPoolId, MaxResults: 60, NextToken }));
    clients.push(...(page.UserPoolClients ?? []));
    NextToken = page.NextToken;
  } while (NextToken);
  const id = clients.find((client) => client.ClientName === name)?.ClientId;
  if (!id) return undefined;
  return (await sdk.send(new DescribeUserPoolClientCommand({ UserPoolId: userPoolId, ClientId: id }))).UserPoolClient;
}

/** Logs a throwaway user in and returns the `iss` of its ID token; the user is deleted again. */
async function tokenIssuer(sdk: CognitoIdentityProviderClient, userPoolId: string, clientId: string): Promise<string> {
  const removeProbe = () =>
    sdk.send(new AdminDeleteUserCommand({ UserPoolId: userPoolId, Username: PROBE_USER })).catch((error: unknown) => {
      if ((error as { name?: string })?.name !== 'UserNotFoundException') throw error;
    });
  await removeProbe(); // left over by a run that died half-way
  const password = `Probe-${randomBytes(12).toString('base64url')}-1a`;
  try {
    await sdk.send(
      new AdminCreateUserCommand({
        UserPoolId: userPoolId,
        Username: PROBE_USER,
        MessageAction: 'SUPPRESS',
        UserAttributes: [{ Name: 'email', Value: PROBE_USER }],
      }),
    );
    await sdk.send(new AdminSetUserPasswordCommand({ UserPoolId: userPoolId, Username: PROBE_USER, Password: password, Permanent: true }));
    const auth = await sdk.send(
      new InitiateAuthCommand({ ClientId: clientId, AuthFlow: 'USER_PASSWORD_AUTH', AuthParameters: { USERNAME: PROBE_USER, PASSWORD: password } }),
    );
    const idToken = auth.AuthenticationResult?.IdToken;
    if (!idToken) throw new Error('cognito-local returned no ID token for the issuer check');
    const payload = JSON.parse(Buffer.from(idToken.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iss?: unknown };
    if (typeof payload.iss !== 'string') throw new Error('the ID token of the issuer check has no `iss`');
    return payload.iss;
  } finally {
    await removeProbe();
  }
}

export async function initPool(options: InitPoolOptions): Promise<InitPoolResult> {
  const endpoint = trimSlash(options.endpoint);
  const poolName = options.poolName ?? 'fleet';
  const validity = options.idTokenValiditySeconds ?? 3600;
  const log = options.logger;
  await waitForEmulator(endpoint, options.waitMs ?? 60_000, log);

  const sdk = new CognitoIdentityProviderClient({
    endpoint,
    region: options.region ?? 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, // cognito-local checks no signature
    maxAttempts: 3,
  });
  try {
    const created = { pool: false, client: false };
    let userPoolId = await findPool(sdk, poolName, options.previous?.userPoolId);
    if (userPoolId) {
      const pool = await sdk.send(new DescribeUserPoolCommand({ UserPoolId: userPoolId }));
      const have = new Set((pool.UserPool?.SchemaAttributes ?? []).map((attribute) => attribute.Name));
      const missing = CUSTOM_ATTRIBUTES.filter((attribute) => !have.has(`custom:${attribute.Name}`));
      if (missing.length > 0) {
        await sdk.send(new AddCustomAttributesCommand({ UserPoolId: userPoolId, CustomAttributes: missing }));
        log?.info({ userPoolId, added: missing.map((a) => a.Name) }, 'added missing custom attributes');
      }
      const repair = poolRepair(pool.UserPool);
      if (repair) {
        await sdk.send(new UpdateUserPoolCommand({ UserPoolId: userPoolId, ...repair }));
        log?.info({ userPoolId, autoVerifiedAttributes: repair.AutoVerifiedAttributes }, 'pool settings repaired');
      }
    } else {
      const out = await sdk.send(
        new CreateUserPoolCommand({ PoolName: poolName, Schema: CUSTOM_ATTRIBUTES, ...POOL_SETTINGS }),
      );
      userPoolId = out.UserPool?.Id;
      if (!userPoolId) throw new Error('CreateUserPool returned no pool id');
      created.pool = true;
    }

    const existing = created.pool ? undefined : await findClient(sdk, userPoolId, poolName, options.previous?.clientId);
    let clientId = existing?.ClientId;
    if (!clientId) {
      const out = await sdk.send(
        new CreateUserPoolClientCommand({ UserPoolId: userPoolId, ClientName: poolName, GenerateSecret: false, ...appClientSettings(validity) }),
      );
      clientId = out.UserPoolClient?.ClientId;
      if (!clientId) throw new Error('CreateUserPoolClient returned no client id');
      created.client = true;
    } else if (
      existing?.IdTokenValidity !== validity ||
      existing.TokenValidityUnits?.IdToken !== 'seconds' ||
      AUTH_FLOWS.some((flow) => !existing.ExplicitAuthFlows?.includes(flow))
    ) {
      await sdk.send(
        new UpdateUserPoolClientCommand({ UserPoolId: userPoolId, ClientId: clientId, ClientName: existing?.ClientName ?? poolName, ...appClientSettings(validity) }),
      );
      log?.info({ clientId }, 'app client settings repaired');
    }

    const expected = `${trimSlash(options.issuerDomain ?? endpoint)}/${userPoolId}`;
    const actual = await tokenIssuer(sdk, userPoolId, clientId);
    if (actual !== expected) {
      throw new Error(
        `cognito-local issues tokens with iss ${JSON.stringify(actual)}, but the services would require ${JSON.stringify(expected)}: ` +
          'make its .cognito/config.json TokenConfig.IssuerDomain equal COGNITO_ISSUER_DOMAIN (the address the services reach it at)',
      );
    }
    return { endpoint, userPoolId, clientId, issuer: actual, created };
  } finally {
    sdk.destroy();
  }
}

/** Reads the ids of an earlier run from the file this tool writes (missing or unreadable: none). */
export async function readIdsFile(file: string): Promise<Partial<PoolIds>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return {};
  }
  const value = (name: string) => new RegExp(`^${name}='([^']*)'$`, 'm').exec(text)?.[1] || undefined;
  return { userPoolId: value('COGNITO_USER_POOL_ID'), clientId: value('COGNITO_CLIENT_ID') };
}

/** Writes the ids as `NAME='value'` lines, atomically (readers never see half a file). */
export async function writeIdsFile(file: string, result: InitPoolResult): Promise<void> {
  const entries: Array<[string, string]> = [
    ['COGNITO_USER_POOL_ID', result.userPoolId],
    ['COGNITO_CLIENT_ID', result.clientId],
    ['COGNITO_ENDPOINT', result.endpoint],
    ['COGNITO_ISSUER', result.issuer],
  ];
  for (const [name, value] of entries) {
    // Sourced by a shell: nothing that could end the quoting or start an expansion.
    if (!/^[A-Za-z0-9_.:/-]+$/.test(value)) throw new Error(`refusing to write ${name}=${JSON.stringify(value)}: unexpected characters`);
  }
  const text = [
    '# Written by tools/cognito-local/init-pool.ts: the cognito-local pool and app client of this stack.',
    '# Development only (cognito-local signs tokens with a key anyone can download).',
    ...entries.map(([name, value]) => `${name}='${value}'`),
    '',
  ].join('\n');
  await mkdir(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode: 0o644 });
  await rename(temporary, file);
}

async function main(): Promise<void> {
  const config = loadConfig(
    commonEnv.extend({
      COGNITO_ENDPOINT: url('http://localhost:9229'),
      COGNITO_ISSUER_DOMAIN: z.string().url().optional(),
      COGNITO_IDS_FILE: z.string().min(1).default('.local/cognito-ids.env'),
      COGNITO_POOL_NAME: z.string().min(1).default('fleet'),
      COGNITO_ID_TOKEN_VALIDITY_SECONDS: nonNegativeInt(3600).refine((s) => s >= 1, 'must be at least 1'),
      AWS_REGION: z.string().min(1).default('us-east-1'),
    }),
  );
  const logger = createLogger('cognito-init', config.LOG_LEVEL);
  const file = path.resolve(config.COGNITO_IDS_FILE);
  const result = await initPool({
    endpoint: config.COGNITO_ENDPOINT,
    issuerDomain: config.COGNITO_ISSUER_DOMAIN,
    region: config.AWS_REGION,
    poolName: config.COGNITO_POOL_NAME,
    idTokenValiditySeconds: config.COGNITO_ID_TOKEN_VALIDITY_SECONDS,
    previous: await readIdsFile(file),
    logger,
  });
  await writeIdsFile(file, result);
  logger.info(
    { userPoolId: result.userPoolId, clientId: result.clientId, issuer: result.issuer, created: result.created, file },
    'cognito-local user pool ready (development only)',
  );
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`cognito-init: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
