// The composition root: the only module that wires every layer together.
import Koa from 'koa';
import mount from 'koa-mount';
import type Provider from 'oidc-provider';
import type { Config } from './config.ts';
import type { Database } from './db/database.ts';
import { adminApi, adminApp } from './http/admin/router.ts';
import { healthRoutes } from './http/health.ts';
import { authorizationServerMetadataAlias, bodyLimit, errorBoundary, notFound, requestId } from './http/middleware.ts';
import type { Logger } from './logger.ts';
import { Directory } from './oidc/directory.ts';
import { createProvider } from './oidc/provider.ts';
import { AuditLog } from './services/audit.ts';
import { pruneAuditEvents } from './services/audit-queries.ts';
import { generateKeyMaterial, openKeyMaterial, type KeyMaterial, type Keyring } from './services/keys.ts';
import * as registration from './services/registration.ts';
import { pruneExpired } from './services/tokens.ts';

export interface App {
  koa: Koa;
  provider: Provider;
  directory: Directory;
  /** The admin API alone, for its own listener when `config.admin` is set (else `koa` serves it). */
  adminKoa: Koa;
  /** The audit log: `audit.record(...)` from any route; written in batches (flush() in tests). */
  audit: AuditLog;
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

export async function buildApp(options: { config: Config; database: Database; logger: Logger; keys: KeyMaterial }): Promise<App> {
  const { config, database, logger, keys } = options;
  // The directory subscribes first: it registers this process when the feed connects.
  const directory = new Directory(database.db, database.changes);
  await database.changes?.start();
  const audit = new AuditLog(database.db, { logger });
  const { provider, fastPaths, verifyAccessToken } = createProvider(config, {
    db: database.db,
    directory,
    audit,
    registration: {
      findInitialAccessToken: (value) => registration.findUsableRegistrationToken(database.db, value),
      create: (input) => registration.storeRegisteredClient(database.db, audit, input),
      update: (input) => registration.updateRegisteredClient(database.db, audit, input),
      remove: (input) => registration.deleteRegisteredClient(database.db, audit, input),
    },
    signingKeys: keys.signingKeys,
    cookieKeys: keys.cookieKeys,
    onServerError: (ctx, error) => logger.error({ err: error, requestId: ctx.state?.requestId }, 'provider error'),
  });

  const koa = new Koa({ proxy: config.trustProxy, keys: keys.cookieKeys });
  koa.silent = true;
  koa.use(requestId());
  koa.use(errorBoundary(logger));
  // Before bodyLimit: the admin API answers every error, 413 included, in its own format.
  const admin = adminApi({
    db: database.db, logger, issuer: config.issuer, maxBodyBytes: config.maxBodyBytes, verifyAccessToken, auditLog: audit,
  });
  // With a separate admin listener, the public one does not serve /admin at all (as Hydra).
  if (!config.admin) koa.use(admin.middleware);
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
      pruneAuditEvents(database.db, config.auditRetentionDays, audit)
        .catch((error: unknown) => logger.warn({ err: error }, 'pruning the audit log failed'));
    }, config.pruneIntervalSeconds * 1000);
    prune.unref();
  }

  return {
    koa,
    provider,
    directory,
    adminKoa: adminApp(admin.middleware, { proxy: config.trustProxy }),
    audit,
    close: async () => {
      if (prune) clearInterval(prune);
      await audit.close();
      await directory.close();
      await database.changes?.close();
    },
  };
}
