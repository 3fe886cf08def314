// Configuration: development defaults are announced, production refuses them all at once.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';

const MASTER_KEY = Buffer.alloc(32, 7).toString('base64');

describe('configuration', () => {
  it('runs with no configuration in development, and says which conveniences it uses', () => {
    const { config, problems, conveniences } = loadConfig({});
    expect(problems).toEqual([]);
    expect(config).toMatchObject({ mode: 'development', issuer: 'http://localhost:3000', port: 3000, host: '127.0.0.1' });
    expect(config.databaseUrl).toBeUndefined();
    expect(conveniences.join('\n')).toMatch(/embedded database/);
    expect(conveniences.join('\n')).toMatch(/plain http/);
  });

  it('refuses every development default in production, listing all problems at once', () => {
    const { problems } = loadConfig({ NODE_ENV: 'production' });
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).toMatch(/ISSUER is required/);
    expect(problems.join('\n')).toMatch(/DATABASE_URL is required/);
    expect(problems.join('\n')).toMatch(/POSTERN_MASTER_KEY or POSTERN_MASTER_KEY_FILE is required in production/);
  });

  it('refuses plain http on a non-loopback issuer in production', () => {
    const { problems } = loadConfig({
      NODE_ENV: 'production', ISSUER: 'http://auth.example.com', DATABASE_URL: 'postgres://db/postern', POSTERN_MASTER_KEY: MASTER_KEY,
    });
    expect(problems).toEqual(['ISSUER must use https in production, got "http://auth.example.com"']);
    expect(loadConfig({
      NODE_ENV: 'production', ISSUER: 'https://auth.example.com/', DATABASE_URL: 'postgres://db/postern', POSTERN_MASTER_KEY: MASTER_KEY,
    })).toMatchObject({ problems: [], config: { issuer: 'https://auth.example.com', host: '0.0.0.0' } });
  });

  it('reports invalid values together with the other problems', () => {
    const { problems } = loadConfig({
      NODE_ENV: 'production', PORT: 'abc', ISSUER: 'ftp://x', DATABASE_URL: 'mysql://x', LOG_LEVEL: 'loud',
    });
    expect(problems.some((p) => p.startsWith('PORT:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('LOG_LEVEL:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('ISSUER must be an http(s) URL'))).toBe(true);
    expect(problems.some((p) => p.startsWith('DATABASE_URL must be'))).toBe(true);
  });

  it('requires DPoP nonces unless DPOP_REQUIRE_NONCE=false, and refuses other values', () => {
    expect(loadConfig({}).config.dpopRequireNonce).toBe(true);
    expect(loadConfig({ DPOP_REQUIRE_NONCE: 'false' }).config.dpopRequireNonce).toBe(false);
    expect(loadConfig({ DPOP_REQUIRE_NONCE: 'maybe' }).problems.some((p) => p.startsWith('DPOP_REQUIRE_NONCE:'))).toBe(true);
  });

  it('keeps an issuer path and strips a trailing slash', () => {
    expect(loadConfig({ ISSUER: 'http://localhost:4000/auth/' }).config.issuer).toBe('http://localhost:4000/auth');
  });

  it('rotates keys every 30 days with an hour of propagation by default; the JWKS max-age stays below the delay', () => {
    expect(loadConfig({}).config.keyRotation).toEqual({ rotationDays: 30, propagationSeconds: 3600, jwksMaxAgeSeconds: 600 });
    expect(loadConfig({ KEY_ROTATION_DAYS: '0', KEY_PROPAGATION_SECONDS: '6' }).config.keyRotation)
      .toEqual({ rotationDays: 0, propagationSeconds: 6, jwksMaxAgeSeconds: 3 });
    for (const seconds of [2, 3, 7, 1199, 1200, 86400]) {
      const { jwksMaxAgeSeconds } = loadConfig({ KEY_PROPAGATION_SECONDS: String(seconds) }).config.keyRotation;
      expect(jwksMaxAgeSeconds).toBeLessThan(seconds);
      expect(jwksMaxAgeSeconds).toBeLessThanOrEqual(600);
    }
    const { problems } = loadConfig({ KEY_ROTATION_DAYS: '-1', KEY_PROPAGATION_SECONDS: '1' });
    expect(problems.map((problem) => problem.split(':')[0]).sort()).toEqual(['KEY_PROPAGATION_SECONDS', 'KEY_ROTATION_DAYS']);
  });
});
