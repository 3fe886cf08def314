// Request limits, with counters shared by every process in Redis or in Postgres (table
// rate_limits, migration 0009) when so configured, else in each process's memory. Used by the
// protocol endpoints and by sign-in protection.
import type { Redis } from 'ioredis';
import type pg from 'pg';
import {
  RateLimiterMemory, RateLimiterPostgres, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract,
} from 'rate-limiter-flexible';

/** The settings (RATE_LIMIT_* in config.ts). */
export interface RateLimitSettings {
  keyPrefix: string;
  windowSeconds: number;
  /** 0: no limit. */
  perClient: number;
  perClientOverrides: Map<string, number>;
  perAddress: number;
  signInPerAddress: number;
  /** The authorization and logout endpoints, which write rows for anonymous requests. */
  authorizePerAddress: number;
  invalidClient: number;
  invalidClientBlockSeconds: number;
}

export type LimiterStoreKind = 'redis' | 'postgres' | 'memory';

export interface LimiterStore {
  kind: LimiterStoreKind;
  redis?: Redis;
  pool?: pg.Pool;
  /** Resolves once the store answers (Redis connects), or after `timeoutMs` regardless. */
  ready(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** The configured store; memory when the one asked for has no connection. */
export async function openLimiterStore(options: { kind: LimiterStoreKind; redisUrl?: string; pool?: pg.Pool }): Promise<LimiterStore> {
  if (options.kind === 'redis' && options.redisUrl) {
    // Loaded only when used: it adds to every start otherwise.
    const { Redis } = await import('ioredis');
    // No offline queue: while Redis is away a call fails at once and the in-memory insurance
    // limiter answers, instead of requests waiting for a reconnect.
    const redis = new Redis(options.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false });
    redis.on('error', () => {}); // reconnects by itself; failures surface as insurance use
    const ready = (timeoutMs: number) => new Promise<boolean>((resolve) => {
      if (redis.status === 'ready') return resolve(true);
      const timer = setTimeout(() => resolve(false), timeoutMs);
      redis.once('ready', () => { clearTimeout(timer); resolve(true); });
    });
    return { kind: 'redis', redis, ready, close: async () => { redis.disconnect(); } };
  }
  const ready = async () => true;
  if (options.kind === 'postgres' && options.pool) return { kind: 'postgres', pool: options.pool, ready, close: async () => {} };
  return { kind: 'memory', ready, close: async () => {} };
}

export interface LimiterOptions {
  /** Names the counters (and the metric label); keys are `${keyPrefix}:${key}`. */
  keyPrefix: string;
  /** Requests allowed per `duration`; 0 means no limit. */
  points: number;
  /** Window in seconds. */
  duration: number;
  /** Once over the limit, refuse for this many seconds (default: until the window ends). */
  blockDuration?: number;
}

export type LimitResult = { allowed: true } | { allowed: false; retryAfterSeconds: number };

export interface Limiter {
  readonly name: string;
  /** Counts one request for `key` (or `points`), and says whether it is within the limit. */
  consume(key: string, points?: number): Promise<LimitResult>;
  /** Whether `key` is over the limit now, without counting anything. */
  check(key: string): Promise<LimitResult>;
  /** Forgets `key` (after a successful sign-in, say). */
  reset(key: string): Promise<void>;
  /** Gives back one request counted for `key` (one that turned out not to be the key's owner). */
  refund(key: string): Promise<void>;
}

const unlimited = (name: string): Limiter => ({
  name,
  consume: async () => ({ allowed: true }),
  check: async () => ({ allowed: true }),
  reset: async () => {},
  refund: async () => {},
});

function refused(res: RateLimiterRes): LimitResult {
  return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(res.msBeforeNext / 1000)) };
}

export function createLimiter(store: LimiterStore, options: LimiterOptions): Limiter {
  if (options.points <= 0) return unlimited(options.keyPrefix);
  const base = {
    keyPrefix: options.keyPrefix,
    points: options.points,
    duration: options.duration,
    blockDuration: options.blockDuration ?? 0,
  };
  // When the shared store fails, each process keeps counting on its own rather than letting
  // everything through or refusing everything.
  const insuranceLimiter = new RateLimiterMemory(base);
  let limiter: RateLimiterAbstract;
  if (store.kind === 'redis') {
    limiter = new RateLimiterRedis({ ...base, storeClient: store.redis, insuranceLimiter });
  } else if (store.kind === 'postgres') {
    limiter = new RateLimiterPostgres({
      ...base, storeClient: store.pool, storeType: 'pool', tableName: 'rate_limits', tableCreated: true, insuranceLimiter,
    });
  } else {
    limiter = insuranceLimiter;
  }
  return {
    name: options.keyPrefix,
    consume: async (key, points = 1) => {
      try {
        await limiter.consume(key, points);
        return { allowed: true };
      } catch (error) {
        if (error instanceof RateLimiterRes) return refused(error);
        throw error;
      }
    },
    check: async (key) => {
      // While blocked (or over the limit) the stored count stays above the allowance.
      const res = await limiter.get(key).catch(() => null);
      return res !== null && res.consumedPoints > options.points ? refused(res) : { allowed: true };
    },
    reset: async (key) => { await limiter.delete(key); },
    refund: async (key) => { await limiter.reward(key, 1); },
  };
}

/** The limits of the protocol and sign-in endpoints, from the configuration. */
export interface RequestLimiters {
  store: LimiterStoreKind;
  /** The limiter for one client (its own limit when it has one). */
  client(clientId: string): Limiter;
  address: Limiter;
  signInAddress: Limiter;
  /** The authorization and logout endpoints, per address. */
  authorizeAddress: Limiter;
  /** Counts invalid_client answers per client_id; over the limit, the client_id backs off. */
  invalidClient: Limiter;
  /** A gateway route rule's limit of `points` requests a minute (keys: rule and client). */
  route(points: number): Limiter;
}

export function createRequestLimiters(store: LimiterStore, settings: RateLimitSettings): RequestLimiters {
  const duration = settings.windowSeconds;
  const byPoints = new Map<number, Limiter>();
  // One per limit a rule sets: bounded by the rules, which administrators write.
  const routeLimiters = new Map<number, Limiter>();
  const clientLimiter = (points: number) => {
    let limiter = byPoints.get(points);
    if (!limiter) {
      limiter = createLimiter(store, { keyPrefix: `${settings.keyPrefix}:client`, points, duration });
      byPoints.set(points, limiter);
    }
    return limiter;
  };
  return {
    store: store.kind,
    client: (clientId) => clientLimiter(settings.perClientOverrides.get(clientId) ?? settings.perClient),
    address: createLimiter(store, { keyPrefix: `${settings.keyPrefix}:address`, points: settings.perAddress, duration }),
    signInAddress: createLimiter(store, { keyPrefix: `${settings.keyPrefix}:sign_in_address`, points: settings.signInPerAddress, duration }),
    authorizeAddress: createLimiter(store, { keyPrefix: `${settings.keyPrefix}:authorize_address`, points: settings.authorizePerAddress, duration }),
    route: (points) => {
      let limiter = routeLimiters.get(points);
      if (!limiter) {
        limiter = createLimiter(store, { keyPrefix: `${settings.keyPrefix}:route`, points, duration: 60 });
        routeLimiters.set(points, limiter);
      }
      return limiter;
    },
    invalidClient: createLimiter(store, {
      keyPrefix: `${settings.keyPrefix}:invalid_client`,
      points: settings.invalidClient,
      duration,
      blockDuration: settings.invalidClientBlockSeconds,
    }),
  };
}
