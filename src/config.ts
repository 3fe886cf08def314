// The only reader of process.env. Everything else receives a Config.
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { isLoopbackHost, normalizeCidr } from './domain/networks.ts';
import { readMasterKeySettings, type MasterKeySettings } from './platform/master-key.ts';
import type { LoginProtectionSettings } from './services/login-protection.ts';
import type { RateLimitSettings } from './services/rate-limits.ts';
import type { TrustedJwtSettings } from './services/trusted-jwt.ts';

export type Mode = 'development' | 'production';

export interface Config extends MasterKeySettings {
  mode: Mode;
  issuer: string;
  host: string;
  port: number;
  /** Unset: the embedded Postgres (PGlite) in `dataDir`. */
  databaseUrl: string | undefined;
  databasePoolSize: number;
  /**
   * Apply pending migrations at start. Off: a server whose database lacks a migration refuses to
   * start, naming `postern migrate` (a deployment step of its own: a Kubernetes Job, an upgrade).
   */
  migrateOnStart: boolean;
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
   * Where browsers reach the admin console (docs/console.md): an origin. Unset: the admin
   * listener's address when ADMIN_PORT is set, else the issuer's origin.
   */
  consoleUrl: string | undefined;
  /**
   * DPoP proofs at the token endpoint must carry a server nonce (RFC 9449 §8): a proof made in
   * advance by a compromised client is useless later. Costs a client one extra round trip.
   */
  dpopRequireNonce: boolean;
  /** The plain client-credentials request and JWT introspection skip the provider's detour. */
  fastPaths: boolean;
  /** Token exchange (RFC 8693): how many exchanges one chain of tokens may hold. */
  tokenExchangeMaxDepth: number;
  /** HTTPS on the public listener: PEM files, re-read when they change (docs/sender-constrained-tokens.md). */
  tls: { certFile: string; keyFile: string } | undefined;
  /** Mutual TLS (RFC 8705): which CAs issue client certificates, and proxies that forward them. */
  mtls: {
    /** PEM bundle of the CAs whose certificates tls_client_auth accepts. */
    caFile: string | undefined;
    /** The header a TLS-terminating proxy puts the client certificate in. */
    header: string | undefined;
    /** CIDR ranges of the proxies trusted to set that header. */
    proxies: string[];
  };
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
  /** Processes serving on this machine (1: no cluster). */
  workers: number;
  shutdownDelaySeconds: number;
  shutdownTimeoutSeconds: number;
  /** Prometheus metrics: a listener of their own, or a bearer token on the public one. */
  metrics: { port: number | undefined; host: string; token: string | undefined; open: boolean };
  redisUrl: string | undefined;
  rateLimitStore: 'memory' | 'postgres' | 'redis';
  rateLimits: RateLimitSettings;
  /** Workload identity: tokens of trusted issuers (docs/workload-identity.md). */
  trustedJwts: TrustedJwtSettings;
  /** CIDR ranges of the gateways the decision endpoint answers (docs/gateways.md); empty: none. */
  gateTrustedGateways: string[];
  /** The ext-authz contract reads the client certificate from Envoy's x-forwarded-client-cert (from mtls.proxies only). */
  gateEnvoyClientCert: boolean;
}

/** `a=10,b=0` to a map; undefined when malformed. */
function parseOverrides(text: string): Map<string, number> | undefined {
  const result = new Map<string, number>();
  for (const item of text.split(',').map((part) => part.trim()).filter(Boolean)) {
    const match = /^([^=\s]+)=(\d{1,8})$/.exec(item);
    if (!match) return undefined;
    result.set(match[1]!, Number(match[2]));
  }
  return result;
}

export interface ConfigResult {
  config: Config;
  /** Every reason this configuration may not run, listed together. */
  problems: string[];
  /** Development conveniences in use, announced at start. */
  conveniences: string[];
}

const intFrom = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

// Every variable Postern reads, with what it does: docs/deployment.md's table is generated from
// these descriptions (`npm run docs:env`), and a test keeps it in step.
export const envSchema = z.object({
  NODE_ENV: z.string().optional().describe('`production` refuses every development default; anything else is development mode.'),
  ISSUER: z.string().optional().describe('Public URL of the server (https in production); its path is where the endpoints live. Development: `http://localhost:$PORT`.'),
  HOST: z.string().min(1).optional().describe('Address of the public listener. Default `127.0.0.1` in development, `0.0.0.0` in production.'),
  PORT: intFrom(0, 65535).default(3000).describe('Port of the public listener.'),
  DATABASE_URL: z.string().min(1).optional().describe('`postgres://` URL of the store of record. Unset: the embedded database (development only, one process).'),
  DATABASE_POOL_SIZE: intFrom(1, 200).default(10).describe('Connections per process in the Postgres pool.'),
  MIGRATE_ON_START: z.enum(['true', 'false', '1', '0']).optional().describe('Apply pending database migrations when a server starts. Default `true` in development, `false` in production, where `postern migrate` is a deployment step of its own and a server whose database lacks a migration refuses to start, naming it.'),
  POSTERN_DATA_DIR: z.string().min(1).default('.postern-data').describe('Folder of the embedded database and of the development master key.'),
  TRUST_PROXY: z.enum(['true', 'false', '1', '0']).default('false').describe('Trust a proxy in front: the client address is the last `X-Forwarded-For` entry. URLs always come from `ISSUER`, never from `Host` or `X-Forwarded-Host`/`-Proto`.'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Level of the JSON logs on stdout.'),
  MAX_BODY_BYTES: intFrom(1024, 1024 * 1024).default(32 * 1024).describe('Largest request body accepted (413 above it).'),
  PRUNE_INTERVAL_SECONDS: intFrom(0, 86400).default(600).describe('How often expired tokens, codes and revocations are deleted (0: never).'),
  ADMIN_PORT: intFrom(1, 65535).optional().describe('A separate listener for the admin API; unset: the public listener serves it.'),
  ADMIN_HOST: z.string().min(1).default('127.0.0.1').describe('Address of the admin listener.'),
  CONSOLE_URL: z.url({ protocol: /^https?$/ }).optional().describe('Origin browsers use to reach the admin console at `/console` (e.g. `https://admin.example.com`). Unset: the admin listener (`http://ADMIN_HOST:ADMIN_PORT`) when ADMIN_PORT is set, else the issuer\'s origin.'),
  // Encryption at rest of private keys (docs/master-key.md). Values are never echoed in problems.
  POSTERN_MASTER_KEY: z.string().optional().describe('Master key encrypting private keys at rest (base64, 32 bytes); see docs/master-key.md.'),
  POSTERN_MASTER_KEY_FILE: z.string().min(1).optional().describe('File holding the master key, instead of POSTERN_MASTER_KEY.'),
  POSTERN_NEW_MASTER_KEY: z.string().optional().describe('The next master key, during a master-key rotation.'),
  // Operations (docs/deployment.md).
  WORKERS: intFrom(1, 256).optional().describe('Processes serving on this machine (a cluster sharing the ports). Default: the number of CPUs in production, 1 in development. Above 1 needs DATABASE_URL.'),
  SHUTDOWN_DELAY_SECONDS: intFrom(0, 120).default(0).describe('On SIGTERM, keep serving this long with /readyz at 503 before refusing connections, so that a load balancer polling readiness stops sending first (set it to its polling interval times its failure threshold).'),
  SHUTDOWN_TIMEOUT_SECONDS: intFrom(1, 600).default(20).describe('On SIGTERM, how long in-flight requests may take before their connections are cut.'),
  METRICS_PORT: intFrom(1, 65535).optional().describe('Serve Prometheus `/metrics` on a listener of its own (all workers aggregated).'),
  METRICS_HOST: z.string().min(1).default('127.0.0.1').describe('Address of the metrics listener.'),
  METRICS_TOKEN: z.string().min(16).optional().describe('Serve `/metrics` on the public listener to `Authorization: Bearer <token>` (at least 16 characters). With neither this nor METRICS_PORT, `/metrics` is served openly in development and not at all in production.'),
  REDIS_URL: z.string().min(1).optional().describe('`redis://` URL of a Redis holding the rate-limit counters, shared by every process.'),
  RATE_LIMIT_STORE: z.enum(['memory', 'postgres', 'redis']).optional().describe('Where the rate-limit counters live: `redis` (the default with REDIS_URL), `postgres` (table rate_limits: shared, one write per limit per request), or `memory` (the default otherwise: each process counts on its own).'),
  RATE_LIMIT_KEY_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]{1,40}$/).default('postern').describe('Prefix of the rate-limit counters: deployments sharing one Redis need different ones.'),
  RATE_LIMIT_WINDOW_SECONDS: intFrom(1, 3600).default(60).describe('Window of every request limit below.'),
  RATE_LIMIT_CLIENT: intFrom(0, 10_000_000).default(60_000).describe('Requests per window per client_id on the token, introspection, revocation and pushed authorization request endpoints; only requests that authenticate as the client count (0: no limit).'),
  RATE_LIMIT_CLIENT_OVERRIDES: z.string().default('').describe('Per-client limits overriding RATE_LIMIT_CLIENT: `client_id=requests,...` (`0`: no limit for that client).'),
  RATE_LIMIT_ADDRESS: intFrom(0, 10_000_000).default(120_000).describe('Requests per window per source address (IPv6: per /64) on the token, introspection, revocation and pushed authorization request endpoints and every other path served except discovery and JWKS (0: no limit).'),
  RATE_LIMIT_SIGN_IN_ADDRESS: intFrom(0, 10_000_000).default(60).describe('Requests per window per source address on registration and sign-in (0: no limit).'),
  RATE_LIMIT_AUTHORIZE_ADDRESS: intFrom(0, 10_000_000).default(300).describe('Requests per window per source address on the authorization endpoint (`/auth`), pushed authorization requests (`/request`) and logout (`/session/end`, `/session/end/confirm`), each of which may store a row for a caller without any credentials (0: no limit).'),
  RATE_LIMIT_INVALID_CLIENT: intFrom(0, 10_000).default(10).describe('`invalid_client` answers per window for one client_id from one source address before that client backs off at that address (0: never).'),
  RATE_LIMIT_INVALID_CLIENT_BLOCK_SECONDS: intFrom(1, 86400).default(60).describe('How long a client_id backs off at an address after too many `invalid_client` answers from it.'),
  // Sign-in (docs/users.md).
  LOGIN_MAX_FAILURES: intFrom(1, 1000).default(5).describe('Failed logins of one username before it is locked out.'),
  LOGIN_ADDRESS_MAX_FAILURES: intFrom(1, 100_000).default(50).describe('Failed logins from one source address, whatever the usernames, before it is locked out. An address is never slowed down: it may be a whole office behind one NAT.'),
  LOGIN_LOCKOUT_SECONDS: intFrom(1, 86400).default(900).describe('How long a login lockout lasts.'),
  LOGIN_FAILURE_WINDOW_SECONDS: intFrom(1, 86400).default(900).describe('Failed logins older than this are forgotten.'),
  LOGIN_SLOW_DOWN_AFTER: intFrom(1, 1000).default(2).describe('Failed logins of one username after which each further attempt at that username must wait 1 s, 2 s, 4 s, ... (at most 60 s).'),
  // Keys (docs/keys.md).
  KEY_ROTATION_DAYS: intFrom(0, 3650).default(30).describe('Rotate the signing keys automatically when the newest has signed this many days (0: only by hand).'),
  KEY_PROPAGATION_SECONDS: intFrom(2, 30 * 86400).default(3600).describe('A new signing key is published this long before it signs; the JWKS max-age is half of it, at most 600.'),
  // Sender-constrained tokens (docs/sender-constrained-tokens.md) and the audit log (docs/audit.md).
  FAST_PATHS: z.enum(['true', 'false', '1', '0']).default('true').describe('Answer the plain client-credentials request (with a client secret or a verified platform token), the plain token exchange and the introspection of JWTs and of opaque service tokens in front of oidc-provider (the same answers, faster; docs/benchmarks.md). `false` sends every request through the provider.'),
  TOKEN_EXCHANGE_MAX_DEPTH: intFrom(1, 10).default(4).describe('Token exchange (RFC 8693): how many exchanges one chain of tokens may hold; a token exchanged from an exchanged token nests `act` one level deeper (docs/token-exchange.md).'),
  DPOP_REQUIRE_NONCE: z.enum(['true', 'false', '1', '0']).default('true').describe('DPoP proofs at the token endpoint must carry a server nonce (RFC 9449 §8).'),
  // TLS and mutual TLS (docs/sender-constrained-tokens.md, "Mutual TLS").
  TLS_CERT_FILE: z.string().min(1).optional().describe('PEM certificate (chain) of the public listener: with TLS_KEY_FILE, Postern serves HTTPS itself. Replaced files are picked up within 10 s.'),
  TLS_KEY_FILE: z.string().min(1).optional().describe('PEM private key of TLS_CERT_FILE.'),
  TLS_CLIENT_CA_FILE: z.string().min(1).optional().describe('PEM bundle of the CAs that issue client certificates for `tls_client_auth` (RFC 8705 §2.1). The HTTPS listener asks every client for a certificate (optional at the TLS level).'),
  TLS_CLIENT_CERT_HEADER: z.string().regex(/^[A-Za-z0-9-]{1,100}$/).optional().describe('Header in which a TLS-terminating proxy forwards the client certificate (PEM, URL-encoded PEM or base64 DER), e.g. `X-Client-Cert`. Believed only from TLS_CLIENT_CERT_PROXIES.'),
  TLS_CLIENT_CERT_PROXIES: z.string().default('').describe('Addresses (CIDR, comma-separated) of the proxies allowed to set TLS_CLIENT_CERT_HEADER: the TCP peer must be one of them.'),
  GATE_TRUSTED_GATEWAYS: z.string().optional().describe('Addresses (CIDR, comma-separated) of the gateways (nginx, Caddy, Traefik, Envoy) allowed to ask the decision endpoint `/gate/...`: the TCP peer must be one of them. Default: loopback in development, none in production (the endpoint refuses everyone). See docs/gateways.md.'),
  GATE_ENVOY_CLIENT_CERT: z.enum(['true', 'false', '1', '0']).default('false').describe('`true`: the Envoy contract of the decision endpoint (`/gate/ext-authz`) reads the client certificate of certificate-bound tokens from Envoy\'s `x-forwarded-client-cert` (one element, as `forward_client_cert_details: SANITIZE_SET` sets it), believed only from TLS_CLIENT_CERT_PROXIES. See docs/gateways.md.'),
  AUDIT_RETENTION_DAYS: intFrom(0, 36500).default(365).describe('Audit events older than this are deleted by the prune timer (0: kept forever).'),
  // Workload identity (docs/workload-identity.md).
  FEDERATED_ASSERTION_MAX_LIFETIME_SECONDS: intFrom(60, 86400).default(3600).describe('Longest lifetime (`exp` - `iat`) of a trusted issuer\'s token accepted as a client assertion or subject token.'),
  TRUSTED_ISSUER_FETCH_TIMEOUT_MS: intFrom(100, 30_000).default(3000).describe('Deadline of one fetch of a trusted issuer\'s discovery document or keys.'),
  TRUSTED_ISSUER_MAX_JWKS_BYTES: intFrom(1024, 4 * 1024 * 1024).default(256 * 1024).describe('Largest discovery document or JWK Set accepted from a trusted issuer.'),
  TRUSTED_ISSUER_REFETCH_SECONDS: intFrom(1, 3600).default(5).describe('Least time between two fetches of one issuer\'s keys when a token names a key it does not know.'),
  TRUSTED_ISSUER_ALLOW_PRIVATE_ADDRESSES: z.enum(['true', 'false', '1', '0']).default('false').describe('Production: fetch trusted issuers\' keys from private, loopback and link-local addresses too (an in-cluster issuer). Off: such targets are refused, whatever name leads to them.'),
});

/** The JWKS may be cached for at most ten minutes, and for at most half the propagation delay. */
export function jwksMaxAge(propagationSeconds: number): number {
  return Math.min(600, Math.floor(propagationSeconds / 2));
}

type Env = z.infer<typeof envSchema>;

/** What the checks below find: reasons not to run, and development conveniences in use. */
interface Findings { problems: string[]; conveniences: string[] }

/**
 * The variables, parsed. Every invalid one is reported, and the others are read with defaults
 * in its place, so that the checks below still run and every problem is listed at once.
 */
function readEnvironment(env: Record<string, string | undefined>, found: Findings): Env {
  const parsed = envSchema.safeParse(env);
  if (parsed.success) return parsed.data;
  const invalid = new Set<string>();
  for (const issue of parsed.error.issues) {
    const name = String(issue.path[0]);
    invalid.add(name);
    found.problems.push(`${name}: ${issue.message}`);
  }
  return envSchema.parse(Object.fromEntries(Object.entries(env).filter(([k]) => !invalid.has(k))));
}

/** The issuer: required in production, https unless on loopback, https when Postern serves TLS. */
function checkIssuer(e: Env, mode: Mode, tls: Config['tls'], found: Findings): string {
  const { problems, conveniences } = found;
  const scheme = tls ? 'https' : 'http';
  let issuer = e.ISSUER;
  if (!issuer) {
    if (mode === 'production') {
      problems.push('ISSUER is required in production (the public https URL of this server)');
    } else {
      conveniences.push(`issuer defaults to ${scheme}://localhost:${e.PORT}`);
    }
    issuer = `${scheme}://localhost:${e.PORT}`;
  }
  const url = URL.parse(issuer);
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.search || url.hash) {
    problems.push(`ISSUER must be an http(s) URL without query or fragment, got "${issuer}"`);
    return issuer;
  }
  issuer = url.href.replace(/\/$/, '');
  if (url.protocol === 'http:' && tls) {
    problems.push(`ISSUER must use https when Postern serves TLS itself (TLS_CERT_FILE), got "${issuer}"`);
  } else if (url.protocol === 'http:') {
    if (mode === 'production' && !isLoopbackHost(url.hostname)) {
      problems.push(`ISSUER must use https in production, got "${issuer}"`);
    } else {
      conveniences.push('plain http');
    }
  }
  return issuer;
}

/** The store, the listeners' ports and the number of processes. */
function checkProcesses(e: Env, mode: Mode, found: Findings): { workers: number } {
  const { problems } = found;
  if (!e.DATABASE_URL) {
    if (mode === 'production') {
      problems.push('DATABASE_URL is required in production (the embedded database is for development only)');
    } else {
      found.conveniences.push(`embedded database in ${path.resolve(e.POSTERN_DATA_DIR)}`);
    }
  } else if (!URL.parse(e.DATABASE_URL)?.protocol.startsWith('postgres')) {
    problems.push('DATABASE_URL must be a postgres:// or postgresql:// URL');
  }
  if (e.ADMIN_PORT !== undefined && e.ADMIN_PORT === e.PORT) {
    problems.push(`ADMIN_PORT must differ from PORT (${e.PORT}): the admin API gets a listener of its own`);
  }
  const workers = e.WORKERS ?? (mode === 'production' ? os.availableParallelism() : 1);
  // (Production without DATABASE_URL is refused above already.)
  if (workers > 1 && !e.DATABASE_URL && e.WORKERS !== undefined) {
    problems.push(`WORKERS=${workers} needs DATABASE_URL: the embedded database can be open in one process only`);
  }
  if (e.METRICS_PORT !== undefined && [e.PORT, e.ADMIN_PORT].includes(e.METRICS_PORT)) {
    problems.push(`METRICS_PORT must differ from PORT and ADMIN_PORT (${e.METRICS_PORT})`);
  }
  return { workers };
}

/** Where rate-limit counters live, and the per-client overrides. */
function checkRateLimits(e: Env, found: Findings): { store: Config['rateLimitStore']; overrides: Map<string, number> } {
  const { problems } = found;
  if (e.REDIS_URL && !/^rediss?:$/.test(URL.parse(e.REDIS_URL)?.protocol ?? '')) {
    problems.push('REDIS_URL must be a redis:// or rediss:// URL');
  }
  const store = e.RATE_LIMIT_STORE ?? (e.REDIS_URL ? 'redis' : 'memory');
  if (store === 'redis' && !e.REDIS_URL) problems.push('RATE_LIMIT_STORE=redis needs REDIS_URL');
  if (store === 'postgres' && !e.DATABASE_URL) {
    problems.push('RATE_LIMIT_STORE=postgres needs DATABASE_URL (the embedded database is one process: memory counts the same)');
  }
  const overrides = parseOverrides(e.RATE_LIMIT_CLIENT_OVERRIDES);
  if (!overrides) problems.push('RATE_LIMIT_CLIENT_OVERRIDES must read client_id=requests,client_id=requests,...');
  return { store, overrides: overrides ?? new Map() };
}

/** Who may forward client certificates, and what tls_client_auth needs (docs/sender-constrained-tokens.md). */
function checkClientCertificates(e: Env, tls: Config['tls'], found: Findings): string[] {
  const { problems } = found;
  const proxyEntries = e.TLS_CLIENT_CERT_PROXIES.split(',').map((item) => item.trim()).filter(Boolean);
  const badProxies = proxyEntries.filter((item) => normalizeCidr(item) === undefined);
  const proxies = proxyEntries.map(normalizeCidr).filter((item) => item !== undefined);
  if (badProxies.length) problems.push(`TLS_CLIENT_CERT_PROXIES: not an address or CIDR range: ${badProxies.join(', ')}`);
  if (e.TLS_CLIENT_CERT_HEADER && proxies.length === 0) {
    problems.push('TLS_CLIENT_CERT_HEADER needs TLS_CLIENT_CERT_PROXIES: the addresses of the proxies allowed to set it');
  }
  if (e.TLS_CLIENT_CA_FILE && !tls && !e.TLS_CLIENT_CERT_HEADER) {
    problems.push('TLS_CLIENT_CA_FILE needs TLS_CERT_FILE (Postern serves TLS) or TLS_CLIENT_CERT_HEADER (a proxy forwards certificates)');
  }
  return proxies;
}

/** The gateways the decision endpoint believes: loopback by default in development only. */
function checkGateways(e: Env, mode: Mode, found: Findings): string[] {
  if (e.GATE_TRUSTED_GATEWAYS === undefined && mode === 'development') {
    found.conveniences.push('gateways on loopback may ask /gate (GATE_TRUSTED_GATEWAYS)');
    return ['127.0.0.0/8', '::1/128'];
  }
  const entries = (e.GATE_TRUSTED_GATEWAYS ?? '').split(',').map((item) => item.trim()).filter(Boolean);
  const bad = entries.filter((item) => normalizeCidr(item) === undefined);
  if (bad.length) found.problems.push(`GATE_TRUSTED_GATEWAYS: not an address or CIDR range: ${bad.join(', ')}`);
  return entries.map(normalizeCidr).filter((item) => item !== undefined);
}

/** The configuration the checked variables make. */
function toConfig(e: Env, checked: {
  mode: Mode; issuer: string; tls: Config['tls']; workers: number; proxies: string[];
  rateLimits: ReturnType<typeof checkRateLimits>; masterKeys: MasterKeySettings; gateways: string[];
}): Config {
  const { mode, issuer, tls, workers, proxies, rateLimits, masterKeys } = checked;
  const port = e.PORT;
  return {
    mode,
    issuer,
    host: e.HOST ?? (mode === 'production' ? '0.0.0.0' : '127.0.0.1'),
    port,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    // Production changes its schema only when told to (after a backup, once, before the
    // rollout), as it creates its keys only when told to.
    migrateOnStart: e.MIGRATE_ON_START === undefined ? mode === 'development' : e.MIGRATE_ON_START === 'true' || e.MIGRATE_ON_START === '1',
    dataDir: path.resolve(e.POSTERN_DATA_DIR),
    trustProxy: e.TRUST_PROXY === 'true' || e.TRUST_PROXY === '1',
    logLevel: e.LOG_LEVEL,
    maxBodyBytes: e.MAX_BODY_BYTES,
    pruneIntervalSeconds: e.PRUNE_INTERVAL_SECONDS,
    auditRetentionDays: e.AUDIT_RETENTION_DAYS,
    admin: e.ADMIN_PORT === undefined ? undefined : { host: e.ADMIN_HOST, port: e.ADMIN_PORT },
    consoleUrl: e.CONSOLE_URL === undefined ? undefined : new URL(e.CONSOLE_URL).origin,
    login: {
      maxFailures: e.LOGIN_MAX_FAILURES,
      addressMaxFailures: e.LOGIN_ADDRESS_MAX_FAILURES,
      lockoutSeconds: e.LOGIN_LOCKOUT_SECONDS,
      windowSeconds: e.LOGIN_FAILURE_WINDOW_SECONDS,
      slowDownAfter: e.LOGIN_SLOW_DOWN_AFTER,
    },
    dpopRequireNonce: e.DPOP_REQUIRE_NONCE === 'true' || e.DPOP_REQUIRE_NONCE === '1',
    fastPaths: e.FAST_PATHS === 'true' || e.FAST_PATHS === '1',
    tokenExchangeMaxDepth: e.TOKEN_EXCHANGE_MAX_DEPTH,
    tls,
    mtls: {
      caFile: e.TLS_CLIENT_CA_FILE ? path.resolve(e.TLS_CLIENT_CA_FILE) : undefined,
      header: e.TLS_CLIENT_CERT_HEADER?.toLowerCase(),
      proxies,
    },
    masterKey: masterKeys.masterKey,
    developmentMasterKeyFile: masterKeys.developmentMasterKeyFile,
    newMasterKey: masterKeys.newMasterKey,
    keyRotation: {
      rotationDays: e.KEY_ROTATION_DAYS,
      propagationSeconds: e.KEY_PROPAGATION_SECONDS,
      jwksMaxAgeSeconds: jwksMaxAge(e.KEY_PROPAGATION_SECONDS),
    },
    workers,
    shutdownDelaySeconds: e.SHUTDOWN_DELAY_SECONDS,
    shutdownTimeoutSeconds: e.SHUTDOWN_TIMEOUT_SECONDS,
    metrics: {
      port: e.METRICS_PORT,
      host: e.METRICS_HOST,
      token: e.METRICS_TOKEN,
      // Metrics say who calls and how often: open only in development, when nothing else is set.
      open: mode === 'development' && e.METRICS_PORT === undefined && e.METRICS_TOKEN === undefined,
    },
    redisUrl: e.REDIS_URL,
    rateLimitStore: rateLimits.store,
    rateLimits: {
      keyPrefix: e.RATE_LIMIT_KEY_PREFIX,
      windowSeconds: e.RATE_LIMIT_WINDOW_SECONDS,
      perClient: e.RATE_LIMIT_CLIENT,
      perClientOverrides: rateLimits.overrides,
      perAddress: e.RATE_LIMIT_ADDRESS,
      signInPerAddress: e.RATE_LIMIT_SIGN_IN_ADDRESS,
      authorizePerAddress: e.RATE_LIMIT_AUTHORIZE_ADDRESS,
      invalidClient: e.RATE_LIMIT_INVALID_CLIENT,
      invalidClientBlockSeconds: e.RATE_LIMIT_INVALID_CLIENT_BLOCK_SECONDS,
    },
    trustedJwts: {
      maxLifetimeSeconds: e.FEDERATED_ASSERTION_MAX_LIFETIME_SECONDS,
      clockToleranceSeconds: 30,
      refetchIntervalSeconds: e.TRUSTED_ISSUER_REFETCH_SECONDS,
      defaultCacheSeconds: 300,
      minCacheSeconds: 30,
      maxCacheSeconds: 86_400,
      fetch: {
        timeoutMs: e.TRUSTED_ISSUER_FETCH_TIMEOUT_MS,
        maxBytes: e.TRUSTED_ISSUER_MAX_JWKS_BYTES,
        // Development: http on loopback, and the local issuers of tests and examples.
        allowInsecure: mode === 'development',
        allowPrivateAddresses: e.TRUSTED_ISSUER_ALLOW_PRIVATE_ADDRESSES === 'true' || e.TRUSTED_ISSUER_ALLOW_PRIVATE_ADDRESSES === '1',
      },
    },
    gateTrustedGateways: checked.gateways,
    gateEnvoyClientCert: e.GATE_ENVOY_CLIENT_CERT === 'true' || e.GATE_ENVOY_CLIENT_CERT === '1',
  };
}

/** Reads the configuration from an environment (process.env by default). Never throws. */
export function loadConfig(env: Record<string, string | undefined> = process.env): ConfigResult {
  const found: Findings = { problems: [], conveniences: [] };
  const { problems, conveniences } = found;
  const e = readEnvironment(env, found);
  const mode: Mode = e.NODE_ENV === 'production' ? 'production' : 'development';
  const tls = e.TLS_CERT_FILE && e.TLS_KEY_FILE ? { certFile: path.resolve(e.TLS_CERT_FILE), keyFile: path.resolve(e.TLS_KEY_FILE) } : undefined;
  if (Boolean(e.TLS_CERT_FILE) !== Boolean(e.TLS_KEY_FILE)) problems.push('TLS_CERT_FILE and TLS_KEY_FILE go together: set both, or neither');
  const issuer = checkIssuer(e, mode, tls, found);
  const { workers } = checkProcesses(e, mode, found);
  const rateLimits = checkRateLimits(e, found);
  const proxies = checkClientCertificates(e, tls, found);
  const masterKeys = readMasterKeySettings({
    mode,
    dataDir: path.resolve(e.POSTERN_DATA_DIR),
    key: e.POSTERN_MASTER_KEY,
    keyFile: e.POSTERN_MASTER_KEY_FILE,
    newKey: e.POSTERN_NEW_MASTER_KEY,
  });
  problems.push(...masterKeys.problems);
  conveniences.push(...masterKeys.conveniences);
  const gateways = checkGateways(e, mode, found);
  if ((e.GATE_ENVOY_CLIENT_CERT === 'true' || e.GATE_ENVOY_CLIENT_CERT === '1') && proxies.length === 0) {
    problems.push('GATE_ENVOY_CLIENT_CERT needs TLS_CLIENT_CERT_PROXIES: the addresses of the Envoys allowed to forward client certificates');
  }
  const config = toConfig(e, { mode, issuer, tls, workers, rateLimits, proxies, masterKeys, gateways });
  return { config, problems, conveniences };
}

/**
 * The public listener's settings alone, for a local probe (bin/healthcheck.js): loadConfig of
 * just the variables they come from, so that no key file is read and other problems are moot.
 */
export function readListenerSettings(env: Record<string, string | undefined> = process.env): Pick<Config, 'host' | 'port' | 'tls' | 'issuer'> {
  const names = ['NODE_ENV', 'ISSUER', 'HOST', 'PORT', 'TLS_CERT_FILE', 'TLS_KEY_FILE'];
  const { config } = loadConfig(Object.fromEntries(names.map((name) => [name, env[name]])));
  return { host: config.host, port: config.port, tls: config.tls, issuer: config.issuer };
}
