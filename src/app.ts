// The composition root: the only module that wires every layer together.
import Koa from 'koa';
import mount from 'koa-mount';
import type Provider from 'oidc-provider';
import type { Config } from './config.ts';
import type { Database } from './db/database.ts';
import { healthRoutes } from './http/health.ts';
import { authorizationServerMetadataAlias, bodyLimit, errorBoundary, notFound, requestId } from './http/middleware.ts';
import type { Logger } from './logger.ts';
import { Directory } from './oidc/directory.ts';
import { createProvider } from './oidc/provider.ts';
import { generateKeyMaterial, loadKeyMaterial, type KeyMaterial } from './services/keys.ts';
import { pruneExpired } from './services/tokens.ts';

export interface App {
  koa: Koa;
  provider: Provider;
  directory: Directory;
  /** Stops background work (not the database, which the caller owns). */
  close(): Promise<void>;
}

export class MissingKeysError extends Error {
  constructor() {
    super('the database holds no signing keys: create them with `postern keys generate`');
  }
}

/**
 * Loads the key material; in development, creates it on first start (announced by the caller).
 * Production never generates keys implicitly.
 */
export async function prepareKeys(config: Config, database: Database): Promise<{ keys: KeyMaterial; generated: boolean }> {
  const existing = await loadKeyMaterial(database.db);
  if (existing) return { keys: existing, generated: false };
  if (config.mode === 'production') throw new MissingKeysError();
  return { keys: await generateKeyMaterial(database.db), generated: true };
}

export async function buildApp(options: { config: Config; database: Database; logger: Logger; keys: KeyMaterial }): Promise<App> {
  const { config, database, logger, keys } = options;
  // The directory subscribes first: it registers this process when the feed connects.
  const directory = new Directory(database.db, database.changes);
  await database.changes?.start();
  const { provider, fastPaths } = createProvider(config, {
    db: database.db,
    directory,
    signingKeys: keys.signingKeys,
    cookieKeys: keys.cookieKeys,
    onServerError: (ctx, error) => logger.error({ err: error, requestId: ctx.state?.requestId }, 'provider error'),
  });

  const koa = new Koa({ proxy: config.trustProxy, keys: keys.cookieKeys });
  koa.silent = true;
  koa.use(requestId());
  koa.use(errorBoundary(logger));
  koa.use(bodyLimit(config.maxBodyBytes));
  koa.use(healthRoutes().routes());
  // The issuer's path is where the provider lives (oidc-provider requires them to match).
  const prefix = new URL(config.issuer).pathname.replace(/\/$/, '');
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
    close: async () => {
      if (prune) clearInterval(prune);
      await directory.close();
      await database.changes?.close();
    },
  };
}
