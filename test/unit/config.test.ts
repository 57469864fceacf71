import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { ConfigError, EXAMPLE_SECRETS, callerEnv, cognitoEnv, commonEnv, databaseEnv, deploymentWarnings, kafkaEnv, parseConfig, redisEnv } from '../../lib/config';
import { z } from 'zod';

const ROOT = path.resolve(__dirname, '..', '..');

function issuesOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  test('defaults apply, and `NAME=` counts as unset', () => {
    expect(parseConfig(redisEnv, { REDIS_URL: '' })).toEqual({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_PREFIX: 'fleet:' });
    expect(parseConfig(kafkaEnv, { KAFKA_BROKERS: 'a:9092, b:9092' }).KAFKA_BROKERS).toEqual(['a:9092', 'b:9092']);
  });

  test('every bad variable is named in one error', () => {
    const issues = issuesOf(() =>
      parseConfig(kafkaEnv.extend(callerEnv.shape).extend(redisEnv.shape), { KAFKA_BROKERS: '', CALLER_SIGNING_SECRET: 'short', REDIS_URL: 'not a url' }),
    ).join('\n');
    expect(issues).toMatch(/KAFKA_BROKERS/);
    expect(issues).toMatch(/CALLER_SIGNING_SECRET: CALLER_SIGNING_SECRET must be at least 32 bytes \(UTF-8\)/);
    expect(issues).toMatch(/REDIS_URL/);
  });

  test('the caller-signing secret is measured in bytes, not characters', () => {
    // 16 characters of 2 bytes each: 32 bytes, enough; 31 one-byte characters are not.
    expect(parseConfig(callerEnv, { CALLER_SIGNING_SECRET: 'é'.repeat(16) }).CALLER_SIGNING_SECRET).toBe('é'.repeat(16));
    expect(issuesOf(() => parseConfig(callerEnv, { CALLER_SIGNING_SECRET: 'x'.repeat(31) }))).toEqual([
      'CALLER_SIGNING_SECRET: CALLER_SIGNING_SECRET must be at least 32 bytes (UTF-8)',
    ]);
    expect(issuesOf(() => parseConfig(callerEnv, { CALLER_SIGNING_SECRET: 'é'.repeat(15) + 'x' }))).toHaveLength(1);
  });
});

describe('outside development', () => {
  const schema = commonEnv
    .extend(databaseEnv.shape)
    .extend(cognitoEnv.shape)
    .extend(callerEnv.shape)
    .extend({ ADMIN_PASSWORD: z.string().min(8) });
  const safe = {
    APP_DATABASE_URL: 'postgresql://fleet_app:s3cret-from-a-vault@db.internal:5432/fleet',
    COGNITO_USER_POOL_ID: 'eu-west-1_AbCdEf123',
    COGNITO_CLIENT_ID: '1example23456789',
    CALLER_SIGNING_SECRET: 'an-operator-generated-secret-of-enough-length',
    ADMIN_PASSWORD: 'a-password-nobody-else-has',
  };

  test('a deployment with its own secrets starts', () => {
    expect(parseConfig(schema, { ...safe, NODE_ENV: 'production' })).toMatchObject({ NODE_ENV: 'production', CALLER_SIGNING_SECRET: safe.CALLER_SIGNING_SECRET });
  });

  test('the values this repository ships are refused, each naming its variable', () => {
    const shipped = {
      CALLER_SIGNING_SECRET: EXAMPLE_SECRETS.CALLER_SIGNING_SECRET,
      ADMIN_PASSWORD: EXAMPLE_SECRETS.ADMIN_PASSWORD,
      APP_DATABASE_URL: `postgresql://fleet_app:${EXAMPLE_SECRETS.FLEET_APP_PASSWORD}@postgres:5432/fleet`,
      COGNITO_ENDPOINT: 'http://cognito:9229',
    };
    const issues = issuesOf(() => parseConfig(schema, { ...safe, ...shipped, NODE_ENV: 'production' }));
    expect(issues.map((issue) => issue.split(':')[0])).toEqual(['CALLER_SIGNING_SECRET', 'ADMIN_PASSWORD', 'APP_DATABASE_URL', 'COGNITO_ENDPOINT']);
    expect(issues.join('\n')).toMatch(/NODE_ENV=production/);
    // Any NODE_ENV but development and test counts: a typo must not switch the checks off.
    expect(issuesOf(() => parseConfig(schema, { ...safe, ...shipped, NODE_ENV: 'staging' }))).toHaveLength(4);
    // Development and the tests use them freely.
    for (const NODE_ENV of [undefined, '', 'development', 'test']) {
      expect(() => parseConfig(schema, { ...safe, ...shipped, ALLOW_COGNITO_EMULATOR: undefined, NODE_ENV })).not.toThrow();
    }
  });

  test('a short secret is refused everywhere; the check reads only what a process uses', () => {
    expect(issuesOf(() => parseConfig(callerEnv, { CALLER_SIGNING_SECRET: 'short', NODE_ENV: 'production' }))[0]).toMatch(/^CALLER_SIGNING_SECRET: .*32 bytes/);
    // The bridge reads no secret: the example one in its environment is none of its business.
    expect(() => parseConfig(redisEnv, { CALLER_SIGNING_SECRET: EXAMPLE_SECRETS.CALLER_SIGNING_SECRET, NODE_ENV: 'production' })).not.toThrow();
  });

  test('the Cognito emulator needs ALLOW_COGNITO_EMULATOR=true, and is then warned about', () => {
    const emulator = { ...safe, COGNITO_ENDPOINT: 'http://cognito:9229', NODE_ENV: 'production' };
    expect(issuesOf(() => parseConfig(schema, emulator))).toEqual([expect.stringMatching(/^COGNITO_ENDPOINT: .*ALLOW_COGNITO_EMULATOR=true/)]);
    const allowed = parseConfig(schema, { ...emulator, ALLOW_COGNITO_EMULATOR: 'true' });
    expect(deploymentWarnings(allowed, 'production')).toEqual([expect.stringMatching(/COGNITO_ENDPOINT=http:\/\/cognito:9229 .*anyone can mint tokens/)]);
    expect(deploymentWarnings(allowed, 'development')).toEqual([]);
  });

  test('the example values listed are exactly the ones .env.example, the dev runner and docker-compose.yml ship', () => {
    const example = Object.fromEntries(
      readFileSync(path.join(ROOT, '.env.example'), 'utf8')
        .split('\n')
        .map((line) => /^([A-Z_]+)=(.*)$/.exec(line))
        .filter((match): match is RegExpExecArray => match !== null)
        .map((match) => [match[1], match[2]]),
    );
    expect(example.CALLER_SIGNING_SECRET).toBe(EXAMPLE_SECRETS.CALLER_SIGNING_SECRET);
    expect(example.ADMIN_PASSWORD).toBe(EXAMPLE_SECRETS.ADMIN_PASSWORD);
    expect(new URL(example.APP_DATABASE_URL as string).password).toBe(EXAMPLE_SECRETS.FLEET_APP_PASSWORD);
    expect(example.FLEET_APP_PASSWORD).toBe(EXAMPLE_SECRETS.FLEET_APP_PASSWORD);
    // docker-compose.yml falls back to none of them: it requires each secret (`${NAME:?…}`).
    const compose = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
    YAML.parse(compose);
    for (const name of ['CALLER_SIGNING_SECRET', 'ADMIN_PASSWORD', 'FLEET_APP_PASSWORD', 'POSTGRES_PASSWORD']) {
      expect(compose).not.toMatch(new RegExp(`\\$\\{${name}:-`));
      expect(compose).toMatch(new RegExp(`\\$\\{${name}:\\?`));
    }
  });
});
