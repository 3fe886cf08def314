// The only reader of process.env. Everything else receives a Config.
import path from 'node:path';
import { z } from 'zod';
import { readMasterKeySettings, type MasterKeySettings } from './master-key.ts';

export type Mode = 'development' | 'production';

export interface Config extends MasterKeySettings {
  mode: Mode;
  issuer: string;
  host: string;
  port: number;
  /** Unset: the embedded Postgres (PGlite) in `dataDir`. */
  databaseUrl: string | undefined;
  databasePoolSize: number;
  dataDir: string;
  trustProxy: boolean;
  logLevel: string;
  /** Upper bound on request bodies, in bytes (RFC 6749 requests are small). */
  maxBodyBytes: number;
  /** How often expired tokens, codes and revocations are pruned, in seconds (0: never). */
  pruneIntervalSeconds: number;
  /** Audit events older than this many days are deleted by the prune timer (0: kept forever). */
  auditRetentionDays: number;
  /**
   * A separate listener for the admin API (/admin/v1), kept off the public one. Unset: the admin
   * API is served by the public listener.
   */
  admin: { host: string; port: number } | undefined;
  /**
   * DPoP proofs at the token endpoint must carry a server nonce (RFC 9449 §8): a proof made in
   * advance by a compromised client is useless later. Costs a client one extra round trip.
   */
  dpopRequireNonce: boolean;
  /** Signing-key rotation (docs/keys.md, "Key rotation"). */
  keyRotation: {
    /** Rotate automatically when the newest key has signed for this many days (0: never). */
    rotationDays: number;
    /** Between a new key's publication and its first signature, in seconds. */
    propagationSeconds: number;
    /** Cache-Control max-age of the JWKS: always shorter than the propagation delay. */
    jwksMaxAgeSeconds: number;
  };
  /** Brute-force protection of the login page (docs/users.md). */
  login: LoginProtectionSettings;
}

export interface LoginProtectionSettings {
  /** Failed logins for one username within `windowSeconds` before it is locked. */
  maxFailures: number;
  /** Failed logins from one source address within `windowSeconds` before it is locked. */
  addressMaxFailures: number;
  /** How long a lockout lasts. */
  lockoutSeconds: number;
  /** Failures older than this are forgotten. */
  windowSeconds: number;
  /** Failures after which each further attempt must wait (1 s, 2 s, 4 s, ...) before it is checked. */
  slowDownAfter: number;
}

export interface ConfigResult {
  config: Config;
  /** Every reason this configuration may not run, listed together. */
  problems: string[];
  /** Development conveniences in use, announced at start. */
  conveniences: string[];
}

const intFrom = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const envSchema = z.object({
  NODE_ENV: z.string().optional(),
  ISSUER: z.string().optional(),
  HOST: z.string().min(1).optional(),
  PORT: intFrom(0, 65535).default(3000),
  DATABASE_URL: z.string().min(1).optional(),
  DATABASE_POOL_SIZE: intFrom(1, 200).default(10),
  POSTERN_DATA_DIR: z.string().min(1).default('.postern-data'),
  TRUST_PROXY: z.enum(['true', 'false', '1', '0']).default('false'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MAX_BODY_BYTES: intFrom(1024, 1024 * 1024).default(32 * 1024),
  PRUNE_INTERVAL_SECONDS: intFrom(0, 86400).default(600),
  AUDIT_RETENTION_DAYS: intFrom(0, 36500).default(365),
  ADMIN_PORT: intFrom(1, 65535).optional(),
  ADMIN_HOST: z.string().min(1).default('127.0.0.1'),
  DPOP_REQUIRE_NONCE: z.enum(['true', 'false', '1', '0']).default('true'),
  // Encryption at rest of private keys (docs/keys.md). Values are never echoed in problems.
  POSTERN_MASTER_KEY: z.string().optional(),
  POSTERN_MASTER_KEY_FILE: z.string().min(1).optional(),
  POSTERN_NEW_MASTER_KEY: z.string().optional(),
  LOGIN_MAX_FAILURES: intFrom(1, 1000).default(5),
  LOGIN_ADDRESS_MAX_FAILURES: intFrom(1, 100_000).default(50),
  LOGIN_LOCKOUT_SECONDS: intFrom(1, 86400).default(900),
  LOGIN_FAILURE_WINDOW_SECONDS: intFrom(1, 86400).default(900),
  LOGIN_SLOW_DOWN_AFTER: intFrom(1, 1000).default(2),
  KEY_ROTATION_DAYS: intFrom(0, 3650).default(30),
  KEY_PROPAGATION_SECONDS: intFrom(2, 30 * 86400).default(3600),
});

/** The JWKS may be cached for at most ten minutes, and for at most half the propagation delay. */
export function jwksMaxAge(propagationSeconds: number): number {
  return Math.min(600, Math.floor(propagationSeconds / 2));
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || hostname.startsWith('127.');
}

/** Reads the configuration from an environment (process.env by default). Never throws. */
export function loadConfig(env: Record<string, string | undefined> = process.env): ConfigResult {
  const problems: string[] = [];
  const conveniences: string[] = [];
  const parsed = envSchema.safeParse(env);
  let e: z.infer<typeof envSchema>;
  if (parsed.success) {
    e = parsed.data;
  } else {
    // Report every invalid variable, then carry on with defaults for those so that the other
    // checks below still run and every problem is listed at once.
    const invalid = new Set<string>();
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0]);
      invalid.add(name);
      problems.push(`${name}: ${issue.message}`);
    }
    e = envSchema.parse(Object.fromEntries(Object.entries(env).filter(([k]) => !invalid.has(k))));
  }
  const mode: Mode = e.NODE_ENV === 'production' ? 'production' : 'development';
  const port = e.PORT;

  let issuer = e.ISSUER;
  if (!issuer) {
    if (mode === 'production') {
      problems.push('ISSUER is required in production (the public https URL of this server)');
    } else {
      conveniences.push(`issuer defaults to http://localhost:${port}`);
    }
    issuer = `http://localhost:${port}`;
  }
  const url = URL.parse(issuer);
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.search || url.hash) {
    problems.push(`ISSUER must be an http(s) URL without query or fragment, got "${issuer}"`);
  } else {
    issuer = url.href.replace(/\/$/, '');
    if (url.protocol === 'http:') {
      if (mode === 'production' && !isLoopbackHost(url.hostname)) {
        problems.push(`ISSUER must use https in production, got "${issuer}"`);
      } else {
        conveniences.push('plain http');
      }
    }
  }

  if (!e.DATABASE_URL) {
    if (mode === 'production') {
      problems.push('DATABASE_URL is required in production (the embedded database is for development only)');
    } else {
      conveniences.push(`embedded database in ${path.resolve(e.POSTERN_DATA_DIR)}`);
    }
  } else if (!URL.parse(e.DATABASE_URL)?.protocol.startsWith('postgres')) {
    problems.push('DATABASE_URL must be a postgres:// or postgresql:// URL');
  }

  if (e.ADMIN_PORT !== undefined && e.ADMIN_PORT === port) {
    problems.push(`ADMIN_PORT must differ from PORT (${port}): the admin API gets a listener of its own`);
  }

  const masterKeys = readMasterKeySettings({
    mode,
    dataDir: path.resolve(e.POSTERN_DATA_DIR),
    key: e.POSTERN_MASTER_KEY,
    keyFile: e.POSTERN_MASTER_KEY_FILE,
    newKey: e.POSTERN_NEW_MASTER_KEY,
  });
  problems.push(...masterKeys.problems);
  conveniences.push(...masterKeys.conveniences);

  const config: Config = {
    mode,
    issuer,
    host: e.HOST ?? (mode === 'production' ? '0.0.0.0' : '127.0.0.1'),
    port,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    dataDir: path.resolve(e.POSTERN_DATA_DIR),
    trustProxy: e.TRUST_PROXY === 'true' || e.TRUST_PROXY === '1',
    logLevel: e.LOG_LEVEL,
    maxBodyBytes: e.MAX_BODY_BYTES,
    pruneIntervalSeconds: e.PRUNE_INTERVAL_SECONDS,
    auditRetentionDays: e.AUDIT_RETENTION_DAYS,
    admin: e.ADMIN_PORT === undefined ? undefined : { host: e.ADMIN_HOST, port: e.ADMIN_PORT },
    login: {
      maxFailures: e.LOGIN_MAX_FAILURES,
      addressMaxFailures: e.LOGIN_ADDRESS_MAX_FAILURES,
      lockoutSeconds: e.LOGIN_LOCKOUT_SECONDS,
      windowSeconds: e.LOGIN_FAILURE_WINDOW_SECONDS,
      slowDownAfter: e.LOGIN_SLOW_DOWN_AFTER,
    },
    dpopRequireNonce: e.DPOP_REQUIRE_NONCE === 'true' || e.DPOP_REQUIRE_NONCE === '1',
    masterKey: masterKeys.masterKey,
    developmentMasterKeyFile: masterKeys.developmentMasterKeyFile,
    newMasterKey: masterKeys.newMasterKey,
    keyRotation: {
      rotationDays: e.KEY_ROTATION_DAYS,
      propagationSeconds: e.KEY_PROPAGATION_SECONDS,
      jwksMaxAgeSeconds: jwksMaxAge(e.KEY_PROPAGATION_SECONDS),
    },
  };
  return { config, problems, conveniences };
}
