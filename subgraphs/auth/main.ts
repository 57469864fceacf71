import 'dotenv/config';
import { z } from 'zod';
import { Redis } from 'ioredis';
import { callerEnv, cognitoEnv, commonEnv, hostEnv, lifecycleEnv, databaseEnv, loadConfig, ports, redisEnv } from '../../lib/config';
import { createDatabase } from '../../lib/database';
import { runService } from '../../lib/service';
import { UserPool } from '../../lib/cognito/userPool';
import { startAuthSubgraph } from './server';

const config = loadConfig(
  commonEnv
    .extend(lifecycleEnv.shape)
    .extend(hostEnv.shape)
    .extend(databaseEnv.shape)
    .extend(redisEnv.shape)
    .extend(cognitoEnv.shape)
    .extend(callerEnv.shape)
    .extend({
      AUTH_PORT: ports.AUTH_PORT,
      ADMIN_EMAIL: z.email('ADMIN_EMAIL must be an email address'),
      ADMIN_PASSWORD: z.string().min(8, 'ADMIN_PASSWORD must be at least 8 characters'),
    }),
);

runService('auth', config, async (logger) => {
  const db = createDatabase({ url: config.APP_DATABASE_URL });
  const userPool = UserPool.fromConfig(config);
  const redis = new Redis(config.REDIS_URL);
  const subgraph = await startAuthSubgraph({
    port: config.AUTH_PORT,
    host: config.HOST,
    callerSigningSecret: config.CALLER_SIGNING_SECRET,
    db,
    userPool,
    redis,
    redisPrefix: config.REDIS_PREFIX,
    admin: { email: config.ADMIN_EMAIL, password: config.ADMIN_PASSWORD },
    logger,
  });
  return async () => {
    await subgraph.stop();
    redis.disconnect();
    await db.close();
    userPool.destroy();
  };
});
