import { ConfigError, callerEnv, kafkaEnv, parseConfig, redisEnv } from '../../lib/config';

describe('configuration', () => {
  test('defaults apply, and `NAME=` counts as unset', () => {
    expect(parseConfig(redisEnv, { REDIS_URL: '' })).toEqual({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_PREFIX: 'fleet:' });
    expect(parseConfig(kafkaEnv, { KAFKA_BROKERS: 'a:9092, b:9092' }).KAFKA_BROKERS).toEqual(['a:9092', 'b:9092']);
  });

  test('every bad variable is named in one error', () => {
    const run = () => parseConfig(kafkaEnv.extend(callerEnv.shape).extend(redisEnv.shape), { KAFKA_BROKERS: '', CALLER_SIGNING_SECRET: 'short', REDIS_URL: 'not a url' });
    expect(run).toThrow(ConfigError);
    try {
      run();
    } catch (error) {
      const issues = (error as ConfigError).issues.join('\n');
      expect(issues).toMatch(/KAFKA_BROKERS/);
      expect(issues).toMatch(/CALLER_SIGNING_SECRET: CALLER_SIGNING_SECRET must be at least 32 characters/);
      expect(issues).toMatch(/REDIS_URL/);
    }
  });
});
