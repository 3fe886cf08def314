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

describe('operations settings', () => {
  it('defaults to one worker in development and refuses more on the embedded database', () => {
    expect(loadConfig({}).config.workers).toBe(1);
    expect(loadConfig({ WORKERS: '2' }).problems).toEqual([
      'WORKERS=2 needs DATABASE_URL: the embedded database can be open in one process only',
    ]);
    expect(loadConfig({ WORKERS: '2', DATABASE_URL: 'postgres://db/postern' })).toMatchObject({ problems: [], config: { workers: 2 } });
  });

  it('serves metrics openly only in development with nothing configured', () => {
    expect(loadConfig({}).config.metrics).toMatchObject({ open: true, port: undefined, token: undefined });
    expect(loadConfig({ METRICS_PORT: '9464' }).config.metrics).toMatchObject({ open: false, port: 9464, host: '127.0.0.1' });
    const production = loadConfig({
      NODE_ENV: 'production', ISSUER: 'https://auth.example.com', DATABASE_URL: 'postgres://db/postern', POSTERN_MASTER_KEY: MASTER_KEY,
    });
    expect(production.problems).toEqual([]);
    expect(production.config.metrics.open).toBe(false);
    expect(loadConfig({ METRICS_TOKEN: 'short' }).problems.some((p) => p.startsWith('METRICS_TOKEN:'))).toBe(true);
    expect(loadConfig({ METRICS_PORT: '3000' }).problems).toEqual(['METRICS_PORT must differ from PORT and ADMIN_PORT (3000)']);
  });

  it('reads the request limits, with per-client overrides', () => {
    const { config, problems } = loadConfig({ RATE_LIMIT_CLIENT: '100', RATE_LIMIT_CLIENT_OVERRIDES: 'a=5, b=0' });
    expect(problems).toEqual([]);
    expect(config.rateLimits).toMatchObject({ perClient: 100, windowSeconds: 60, keyPrefix: 'postern' });
    expect([...config.rateLimits.perClientOverrides]).toEqual([['a', 5], ['b', 0]]);
    expect(loadConfig({ RATE_LIMIT_CLIENT_OVERRIDES: 'a=lots' }).problems).toEqual([
      'RATE_LIMIT_CLIENT_OVERRIDES must read client_id=requests,client_id=requests,...',
    ]);
    expect(loadConfig({ REDIS_URL: 'http://x' }).problems).toEqual(['REDIS_URL must be a redis:// or rediss:// URL']);
  });

  it('reads the TLS and mutual TLS settings, and says what is missing', () => {
    expect(loadConfig({ TLS_CERT_FILE: 'cert.pem', TLS_KEY_FILE: 'key.pem', TLS_CLIENT_CA_FILE: 'ca.pem' })).toMatchObject({
      problems: [],
      config: { issuer: 'https://localhost:3000', tls: { certFile: expect.stringMatching(/cert\.pem$/) }, mtls: { caFile: expect.stringMatching(/ca\.pem$/) } },
    });
    expect(loadConfig({ TLS_CERT_FILE: 'cert.pem' }).problems).toEqual(['TLS_CERT_FILE and TLS_KEY_FILE go together: set both, or neither']);
    expect(loadConfig({ TLS_CERT_FILE: 'c.pem', TLS_KEY_FILE: 'k.pem', ISSUER: 'http://localhost:3000' }).problems)
      .toEqual(['ISSUER must use https when Postern serves TLS itself (TLS_CERT_FILE), got "http://localhost:3000"']);
    expect(loadConfig({ TLS_CLIENT_CA_FILE: 'ca.pem' }).problems)
      .toEqual(['TLS_CLIENT_CA_FILE needs TLS_CERT_FILE (Postern serves TLS) or TLS_CLIENT_CERT_HEADER (a proxy forwards certificates)']);
    expect(loadConfig({ TLS_CLIENT_CERT_HEADER: 'X-Client-Cert' }).problems)
      .toEqual(['TLS_CLIENT_CERT_HEADER needs TLS_CLIENT_CERT_PROXIES: the addresses of the proxies allowed to set it']);
    expect(loadConfig({ TLS_CLIENT_CERT_HEADER: 'X-Client-Cert', TLS_CLIENT_CERT_PROXIES: '10.0.0.0/8, 192.0.2.7, bogus' }).problems)
      .toEqual(['TLS_CLIENT_CERT_PROXIES: not an address or CIDR range: bogus']);
    expect(loadConfig({ TLS_CLIENT_CERT_HEADER: 'X-Client-Cert', TLS_CLIENT_CERT_PROXIES: '10.0.0.0/8,192.0.2.7' }).config.mtls)
      .toEqual({ caFile: undefined, header: 'x-client-cert', proxies: ['10.0.0.0/8', '192.0.2.7/32'] });
  });

  it('reads Envoy\'s x-forwarded-client-cert at the gate only when told to, and only with the proxies it comes from', () => {
    expect(loadConfig({}).config.gateEnvoyClientCert).toBe(false);
    expect(loadConfig({ GATE_ENVOY_CLIENT_CERT: 'true', TLS_CLIENT_CERT_PROXIES: '10.0.0.4' })).toMatchObject({ problems: [], config: { gateEnvoyClientCert: true } });
    expect(loadConfig({ GATE_ENVOY_CLIENT_CERT: 'true' }).problems)
      .toEqual(['GATE_ENVOY_CLIENT_CERT needs TLS_CLIENT_CERT_PROXIES: the addresses of the Envoys allowed to forward client certificates']);
  });
});
