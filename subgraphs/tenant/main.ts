import 'dotenv/config';
import { Redis } from 'ioredis';
import { callerEnv, cognitoEnv, commonEnv, hostEnv, lifecycleEnv, databaseEnv, loadConfig, ports, redisEnv } from '../../lib/config';
import { createDatabase } from '../../lib/database';
import { runService } from '../../lib/service';
import { UserPool } from '../../lib/cognito/userPool';
import { startTenantSubgraph } from './server';

const config = loadConfig(
  commonEnv
    .extend(lifecycleEnv.shape)
    .extend(hostEnv.shape)
    .extend(databaseEnv.shape)
    .extend(redisEnv.shape)
    .extend(cognitoEnv.shape)
    .extend(callerEnv.shape)
    .extend({ TENANT_PORT: ports.TENANT_PORT }),
);

runService('tenant', config, async (logger) => {
  const db = createDatabase({ url: config.APP_DATABASE_URL });
  const userPool = UserPool.fromConfig(config);
  const redis = new Redis(config.REDIS_URL);
  const subgraph = await startTenantSubgraph({
    port: config.TENANT_PORT,
    host: config.HOST,
    callerSigningSecret: config.CALLER_SIGNING_SECRET,
    db,
    userPool,
    redis,
    redisPrefix: config.REDIS_PREFIX,
    logger,
  });
  return async () => {
    await subgraph.stop();
    redis.disconnect();
    await db.close();
    userPool.destroy();
  };
});
