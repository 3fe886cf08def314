// The composition root: the only module that wires every layer together.
import Koa from 'koa';
import mount from 'koa-mount';
import type Provider from 'oidc-provider';
import type { Config } from './config.ts';
import type { Database } from './db/database.ts';
import { adminApi, adminApp } from './http/admin/router.ts';
import { healthRoutes } from './http/health.ts';
import { metricsEndpoint, observeRequests } from './http/metrics.ts';
import { rateLimits } from './http/rate-limit.ts';
import { authorizationServerMetadataAlias, bodyLimit, errorBoundary, notFound, requestId } from './http/middleware.ts';
import type { Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { pendingMigrations } from './db/migrator.ts';
import { pingDatabase } from './store/health.ts';
import { Directory } from './oidc/directory.ts';
import { createProvider } from './oidc/provider.ts';
import { generateKeyMaterial, listKeys, openKeyMaterial, type KeyMaterial, type Keyring } from './services/keys.ts';
import { createRequestLimiters, openLimiterStore, type RequestLimiters } from './services/rate-limits.ts';
import { pruneExpired } from './services/tokens.ts';

export interface App {
  koa: Koa;
  provider: Provider;
  directory: Directory;
  /** The admin API alone, for its own listener when `config.admin` is set (else `koa` serves it). */
  adminKoa: Koa;
  metrics: Metrics;
  /** Request limits (login protection takes its limiter from here). */
  limiters: RequestLimiters;
  /** From now on /readyz answers 503 and responses close their connections (shutdown). */
  drain(): void;
  /** Stops background work (not the database, which the caller owns). */
  close(): Promise<void>;
}

export class MissingKeysError extends Error {
  constructor() {
    super('the database holds no signing keys: create them with `postern keys generate`');
  }
}

/**
 * Decrypts the key material with the master key (`keyring[0]`; encrypting rows older than
 * encryption at rest); in development, creates it on first start (announced by the caller).
 * Production never generates keys implicitly. A wrong master key throws MasterKeyError.
 */
export async function prepareKeys(
  config: Config,
  database: Database,
  keyring: Keyring,
): Promise<{ keys: KeyMaterial; generated: boolean; encrypted: number }> {
  const { material, encrypted } = await openKeyMaterial(database.db, keyring);
  if (material) return { keys: material, generated: false, encrypted };
  if (config.mode === 'production') throw new MissingKeysError();
  return { keys: await generateKeyMaterial(database.db, keyring[0]), generated: true, encrypted };
}

export async function buildApp(options: {
  config: Config; database: Database; logger: Logger; keys: KeyMaterial; metrics?: Metrics;
}): Promise<App> {
  const { config, database, logger, keys } = options;
  const metrics = options.metrics ?? createMetrics();
  metrics.watchPool(database.pool);
  metrics.watchSigningKeys(async () => (await listKeys(database.db))
    .filter((key) => key.state !== 'retired')
    .map((key) => ({ kid: key.kid, createdAt: new Date(key.createdAt) })));
  const limiterStore = await openLimiterStore({ kind: config.rateLimitStore, redisUrl: config.redisUrl, pool: database.pool });
  if (!(await limiterStore.ready(5000))) {
    logger.warn('Redis did not answer within 5 s; each process counts request limits on its own until it does');
  }
  const limiters = createRequestLimiters(limiterStore, config.rateLimits);
  let draining = false;
  // The directory subscribes first: it registers this process when the feed connects.
  const directory = new Directory(database.db, database.changes);
  await database.changes?.start();
  const { provider, fastPaths, verifyAccessToken } = createProvider(config, {
    db: database.db,
    directory,
    signingKeys: keys.signingKeys,
    cookieKeys: keys.cookieKeys,
    onServerError: (ctx, error) => logger.error({ err: error, requestId: ctx.state?.requestId }, 'provider error'),
    onTokenIssued: (grantType, api) => metrics.tokensIssued.inc({ grant_type: grantType, api }),
  });
  const prefix = new URL(config.issuer).pathname.replace(/\/$/, '');

  const koa = new Koa({ proxy: config.trustProxy, keys: keys.cookieKeys });
  koa.silent = true;
  koa.use(requestId());
  koa.use(async (ctx, next) => {
    // While shutting down, answer what is in flight and let each connection go after it.
    if (draining) ctx.set('Connection', 'close');
    await next();
  });
  koa.use(observeRequests(metrics, logger, prefix));
  koa.use(errorBoundary(logger));
  // Before bodyLimit: the admin API answers every error, 413 included, in its own format.
  const admin = adminApi({
    db: database.db, logger, issuer: config.issuer, maxBodyBytes: config.maxBodyBytes, verifyAccessToken,
  });
  // With a separate admin listener, the public one does not serve /admin at all (as Hydra).
  if (!config.admin) koa.use(admin.middleware);
  koa.use(bodyLimit(config.maxBodyBytes));
  koa.use(healthRoutes({
    database: () => pingDatabase(database.db),
    pendingMigrations: () => pendingMigrations(database),
    keysLoaded: () => keys.signingKeys.length > 0,
    draining: () => draining,
  }, logger).routes());
  koa.use(metricsEndpoint(metrics, { open: config.metrics.open, token: config.metrics.token }));
  koa.use(rateLimits({ limiters, issuerPath: prefix, maxBodyBytes: config.maxBodyBytes, metrics, logger }));
  // The issuer's path is where the provider lives (oidc-provider requires them to match).
  koa.use(authorizationServerMetadataAlias(prefix));
  for (const fastPath of fastPaths) koa.use(fastPath);
  koa.use(prefix ? mount(prefix, provider as unknown as Koa) : mount(provider as unknown as Koa));
  koa.use(notFound());

  let prune: NodeJS.Timeout | undefined;
  if (config.pruneIntervalSeconds > 0) {
    prune = setInterval(() => {
      pruneExpired(database.db).catch((error: unknown) => logger.warn({ err: error }, 'pruning failed'));
    }, config.pruneIntervalSeconds * 1000);
    prune.unref();
  }

  return {
    koa,
    provider,
    directory,
    adminKoa: adminApp(admin.middleware, { proxy: config.trustProxy }),
    metrics,
    limiters,
    drain: () => { draining = true; },
    close: async () => {
      if (prune) clearInterval(prune);
      await limiterStore.close();
      await directory.close();
      await database.changes?.close();
    },
  };
}
