// The composition root: the only module that wires every layer together. http/ and oidc/ meet
// here and nowhere else (docs/architecture.md).
import type { X509Certificate } from 'node:crypto';
import type Koa from 'koa';
import type { Config } from './config.ts';
import type { Database } from './db/database.ts';
import { pendingMigrations } from './db/migrator.ts';
import { ArtifactKey } from './domain/artifact-hashing.ts';
import { adminApi, adminApp } from './http/admin/router.ts';
import { consoleMiddleware } from './http/console/router.ts';
import { consoleUrls } from './http/console/sign-in.ts';
import { healthRoutes } from './http/health.ts';
import { interactionRoutes } from './http/interactions.ts';
import { gateEndpoint } from './http/gate.ts';
import { createKoaApp, lanes, type Lane } from './http/koa-app.ts';
import { metricsEndpoint, observeRequests } from './http/metrics.ts';
import { authorizationServerMetadataAlias, bodyLimit, canonicalHost, errorBoundary, noCachePragma, notFound, requestId } from './http/middleware.ts';
import { createPages, providerPages, type Pages } from './http/pages.ts';
import { requestLimits, type RequestLimits } from './http/rate-limit.ts';
import { protocolLane } from './http/protocol-lane.ts';
import { requestGuard } from './http/request-guard.ts';
import { ClientCertificates } from './oidc/client-certificates.ts';
import { Directory } from './oidc/directory.ts';
import { interactionFlow } from './oidc/interactions.ts';
import { createProvider, type Provider } from './oidc/provider.ts';
import { ProviderHolder } from './oidc/provider-holder.ts';
import type { Logger } from './platform/logger.ts';
import { createMetrics, type Metrics } from './platform/metrics.ts';
import { Propagation } from './propagation/index.ts';
import { hashStoredArtifacts } from './services/artifacts.ts';
import { AuditLog } from './services/audit.ts';
import { createKeySetLoader, listKeys, type KeyRotation } from './services/key-rotation.ts';
import { generateKeyMaterial, openKeyMaterial, type KeyMaterial, type Keyring } from './services/keys.ts';
import { attemptLogin } from './services/login.ts';
import { LoginProtection } from './services/login-protection.ts';
import { startMaintenance } from './services/maintenance.ts';
import { createRequestLimiters, openLimiterStore, type LimiterStore, type RequestLimiters } from './services/rate-limits.ts';
import * as registration from './services/registration.ts';
import { recordClientNetworkRefused } from './services/security-events.ts';
import { DEFAULT_CONSOLE_SESSION, registerConsoleApp } from './services/console-sessions.ts';
import { pingDatabase } from './store/health.ts';
import { TrustedJwtVerifier } from './services/trusted-jwt.ts';
import { PROVIDER_ROUTES } from './domain/endpoints.ts';
import { decide, type GateRoutes } from './services/gate.ts';
import { parseNetworks } from './domain/networks.ts';
import { LiveRoutes } from './services/live-routes.ts';

export interface App {
  koa: Koa;
  /** The provider serving now; it is replaced when the signing keys change (use `providers`). */
  readonly provider: Provider;
  providers: ProviderHolder;
  /** This process's registration for propagation (its id in server_processes). */
  propagation: Propagation;
  directory: Directory;
  /** Route policies, compiled and kept current: `routes.match({ host, method, path })` per request. */
  routes: LiveRoutes;
  /** The admin API alone, for its own listener when `config.admin` is set (else `koa` serves it). */
  adminKoa: Koa;
  /** The audit log: `audit.record(...)` from any route; written in batches (flush() in tests). */
  audit: AuditLog;
  metrics: Metrics;
  /** Request limits (login protection takes its limiter from here). */
  limiters: RequestLimiters;
  /** Client certificates of requests (RFC 8705); its CAs are replaced when the CA file changes. */
  clientCertificates: ClientCertificates;
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
 * Production never generates keys implicitly. A wrong master key throws MasterKeyError. Then
 * hashes the stored artifacts an older version wrote with their raw values (`converted`).
 */
export async function prepareKeys(
  config: Config,
  database: Database,
  keyring: Keyring,
): Promise<{ keys: KeyMaterial; generated: boolean; encrypted: number; converted: number }> {
  const { material, encrypted } = await openKeyMaterial(database.db, keyring);
  if (!material && config.mode === 'production') throw new MissingKeysError();
  const keys = material ?? await generateKeyMaterial(database.db, keyring[0]);
  const converted = await hashStoredArtifacts(database.db, ArtifactKey.fromSecret(keys.artifactKey));
  return { keys, generated: !material, encrypted, converted };
}

export interface BuildAppOptions {
  config: Config;
  database: Database;
  logger: Logger;
  cookieKeys: string[];
  /** The HMAC key of DPoP nonces, the same in every process (RFC 9449 §8). */
  dpopNonceSecret: string;
  /** The secret of the artifact key (src/domain/artifact-hashing.ts), the same in every process. */
  artifactKey: string;
  /** Opens the private signing keys (`keyring[0]` seals new ones). */
  keyring: Keyring;
  /** The clock of key states and rotations (tests may move it). */
  now?: () => number;
  /** Told of every rotation this process made on schedule (an audit hook). */
  onKeyRotation?(rotation: KeyRotation): void;
  /** A cluster worker's metrics registry (the primary aggregates them); a new one by default. */
  metrics?: Metrics;
  /** The CAs of TLS_CLIENT_CA_FILE: tls_client_auth accepts certificates they issued. */
  clientAuthorities?: X509Certificate[];
  /** The route rules the decision endpoint matches instead of the stored ones (tests). */
  gateRoutes?: GateRoutes;
}

/** What the parts of the app share once the process's services are up. */
interface Parts {
  options: BuildAppOptions;
  /** The route policies the decision endpoint matches. */
  routes: GateRoutes;
  /** Stored tokens, codes and sessions are found by their keyed hash under it. */
  artifactKey: ArtifactKey;
  /** The issuer's path is where the provider lives (oidc-provider requires them to match). */
  prefix: string;
  now: () => number;
  metrics: Metrics;
  limiters: RequestLimiters;
  directory: Directory;
  audit: AuditLog;
  pages: Pages;
  clientCertificates: ClientCertificates;
  protection: LoginProtection;
  /** Tokens of trusted issuers (workload identity): client assertions and subject tokens. */
  trustedJwts: TrustedJwtVerifier;
  /** True once shutdown has begun. */
  draining(): boolean;
}

async function openLimits(config: Config, database: Database, logger: Logger): Promise<{ store: LimiterStore; limiters: RequestLimiters }> {
  const store = await openLimiterStore({ kind: config.rateLimitStore, redisUrl: config.redisUrl, pool: database.pool });
  if (!(await store.ready(5000))) {
    logger.warn('Redis did not answer within 5 s; each process counts request limits on its own until it does');
  }
  return { store, limiters: createRequestLimiters(store, config.rateLimits) };
}

/** The provider of the current key set, rebuilt when the keys change (oidc/provider-holder.ts). */
function startProviders(parts: Parts, propagation: Propagation): Promise<ProviderHolder> {
  const { config, database, logger } = parts.options;
  const { audit, metrics } = parts;
  const db = database.db;
  return ProviderHolder.create({
    build: (keys) => createProvider(config, {
      pages: providerPages(parts.pages),
      db,
      directory: parts.directory,
      keys,
      cookieKeys: parts.options.cookieKeys,
      dpopNonceSecret: parts.options.dpopNonceSecret,
      artifactKey: parts.artifactKey,
      clientCertificates: parts.clientCertificates,
      trustedJwts: parts.trustedJwts,
      onServerError: (ctx, error) => logger.error({ err: error, requestId: ctx.state?.requestId }, 'provider error'),
      onNetworkRefused: (refusal) => recordClientNetworkRefused(logger, audit, refusal),
      onTokenIssued: (grantType, api) => metrics.tokensIssued.inc({ grant_type: grantType, api }),
      onFastPathAnswer: (endpoint) => metrics.fastPathAnswers.inc({ endpoint }),
      audit,
      registration: {
        findInitialAccessToken: (value) => registration.findUsableRegistrationToken(db, value),
        create: (input) => registration.storeRegisteredClient(db, audit, input),
        update: (input) => registration.updateRegisteredClient(db, audit, input),
        remove: (input) => registration.deleteRegisteredClient(db, audit, input),
      },
    }),
    load: createKeySetLoader(db, parts.options.keyring),
    prefix: parts.prefix,
    changes: propagation,
    now: parts.now,
    onSwap: (keys, previous) => {
      const signing = (set: typeof keys) => set.keys.filter((key) => key.signs).map((key) => key.kid);
      logger.info({ signing: signing(keys), was: signing(previous), published: keys.keys.map((key) => key.kid) }, 'signing key set changed');
      if (keys.unopened.length) {
        logger.error({ kids: keys.unopened }, 'signing keys this process cannot decrypt (published, never used to sign): restart it with the current master key');
      }
    },
    onError: (error) => logger.error({ err: error }, 'reloading the signing keys failed; still serving with the previous ones'),
  });
}

/** The admin API (/admin/v1), answering Bearer tokens of the current provider. */
function buildAdminApi(parts: Parts, providers: ProviderHolder) {
  const { config, database, logger } = parts.options;
  return adminApi({
    db: database.db,
    logger,
    issuer: config.issuer,
    maxBodyBytes: config.maxBodyBytes,
    verifyAccessToken: (token, audience, request) => providers.current()
      .verifyAccessToken(token, audience, parts.clientCertificates.fromRequest(request)?.thumbprint),
    audit: parts.audit,
    certificateHeader: config.mtls.header,
    issuerRules: { development: config.mode === 'development' },
  });
}

/**
 * Where browsers reach the admin console: CONSOLE_URL, else the admin listener when there is
 * one (on loopback when it listens everywhere), else the issuer's origin.
 */
export function consoleOrigin(config: Config): string {
  if (config.consoleUrl) return config.consoleUrl;
  if (!config.admin) return new URL(config.issuer).origin;
  const host = ['0.0.0.0', '::', ''].includes(config.admin.host) ? '127.0.0.1' : config.admin.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.admin.port}`;
}

/** The admin console (/console), on the admin listener when there is one, else the public one. */
function buildConsole(parts: Parts, providers: ProviderHolder): Koa.Middleware {
  const { config, database, logger } = parts.options;
  return consoleMiddleware({
    db: database.db,
    audit: parts.audit,
    logger,
    artifactKey: parts.artifactKey,
    keyring: parts.options.keyring,
    issuer: config.issuer,
    consoleOrigin: consoleOrigin(config),
    secureCookies: config.mode === 'production',
    maxBodyBytes: config.maxBodyBytes,
    session: DEFAULT_CONSOLE_SESSION,
    keyRotation: config.keyRotation,
    issuerRules: { development: config.mode === 'development' },
    reloadKeys: async () => { await providers.refresh(); },
  });
}

/** The public listener's app: every request passes these, in this order. */
function buildPublicApp(parts: Parts, providers: ProviderHolder, admin: { middleware: Koa.Middleware }, observe: Koa.Middleware, adminConsole?: Koa.Middleware): Koa {
  const { config, database, logger, cookieKeys } = parts.options;
  const { prefix, pages } = parts;
  const limits = requestLimits({
    limiters: parts.limiters, issuerPath: prefix, maxBodyBytes: config.maxBodyBytes, metrics: parts.metrics, logger,
    isKnownClient: async (clientId) => (await parts.directory.client(clientId)) !== undefined,
    clientOfAssertion: (assertion) => parts.trustedJwts.claimedClientId(assertion),
    pageRefused: (ctx, seconds) => pages.error(ctx, 429, {
      heading: 'Too many attempts',
      message: `Too many requests came from your network. Try again in ${seconds < 120 ? `${seconds} seconds` : `${Math.ceil(seconds / 60)} minutes`}.`,
      code: 'too_many_requests',
    }),
  });
  // The decision endpoint and the plain token and introspection requests answer before Koa: a
  // gateway asks before every request it passes on, and services ask for and check tokens as
  // often (src/http/gate.ts and protocol-lane.ts do for them what the middleware below does).
  const lane = lanes(buildGate(parts, providers), config.fastPaths ? buildProtocolLane(parts, providers, limits) : undefined);
  const koa = createKoaApp({ trustProxy: config.trustProxy, keys: cookieKeys, lane });
  koa.use(requestId());
  // Outside everything that answers, errors included.
  koa.use(noCachePragma());
  koa.use(async (ctx, next) => {
    // While shutting down, answer what is in flight and let each connection go after it.
    if (parts.draining()) ctx.set('Connection', 'close');
    await next();
  });
  koa.use(observe);
  koa.use(errorBoundary(logger));
  // URLs are built from ISSUER, never from the Host the caller sent. The decision endpoint, on its
  // lane, reads the Host and X-Forwarded-Host a gateway sends to name the API's host, not ours.
  koa.use(canonicalHost(config.issuer, config.trustProxy));
  // Before bodyLimit: the admin API answers every error, 413 included, in its own format.
  // With a separate admin listener, the public one does not serve /admin at all (as Hydra).
  if (!config.admin) koa.use(admin.middleware);
  koa.use(bodyLimit(config.maxBodyBytes));
  // Before anything reads the input: NUL bytes, invalid UTF-8 and over-long parameters.
  koa.use(requestGuard({
    issuerPath: prefix,
    maxBodyBytes: config.maxBodyBytes,
    certificateHeader: config.mtls.header,
    refusePage: (ctx, status, message) => pages.error(ctx, status, {
      heading: 'This sign-in request cannot continue', message, code: status === 413 ? 'request_too_large' : 'invalid_request',
    }),
  }));
  koa.use(healthRoutes({
    database: () => pingDatabase(database.db),
    pendingMigrations: () => pendingMigrations(database),
    keysLoaded: () => providers.current().keys.keys.length > 0,
    draining: parts.draining,
  }, { logger, onDatabaseCheck: () => parts.metrics.readinessChecks.inc() }).routes());
  koa.use(metricsEndpoint(parts.metrics, { open: config.metrics.open, token: config.metrics.token }));
  koa.use(limits.middleware);
  koa.use(authorizationServerMetadataAlias(prefix));
  if (adminConsole) koa.use(adminConsole);
  koa.use(interactionRoutes({
    flow: interactionFlow(() => providers.current().provider),
    db: database.db,
    pages,
    login: (attempt) => attemptLogin({ db: database.db, protection: parts.protection, audit: parts.audit, metrics: parts.metrics }, attempt),
    logger,
    issuerPath: prefix,
    secureCookies: config.mode === 'production',
    maxBodyBytes: config.maxBodyBytes,
  }));
  // The fast paths and the provider of the current key set.
  koa.use((ctx, next) => providers.current().middleware(ctx, next));
  koa.use(notFound());
  return koa;
}

/** The plain token and introspection requests before Koa (http/protocol-lane.ts), by the current provider's fast paths. */
function buildProtocolLane(parts: Parts, providers: ProviderHolder, limits: RequestLimits): Lane {
  const { config, logger } = parts.options;
  return protocolLane({
    paths: [PROVIDER_ROUTES.token, PROVIDER_ROUTES.introspection].map((path) => `${parts.prefix}${path}`),
    maxBodyBytes: config.maxBodyBytes,
    certificateHeader: config.mtls.header,
    trustProxy: config.trustProxy,
    issuerPath: parts.prefix,
    limits,
    answer: (request) => providers.current().answerEarly?.(request) ?? Promise.resolve(undefined),
    draining: parts.draining,
    metrics: parts.metrics,
    logger,
  });
}

/** The decision endpoint for gateways (http/gate.ts), over the route rules and the provider's tokens. */
function buildGate(parts: Parts, providers: ProviderHolder): Lane {
  const { config, logger } = parts.options;
  const { routes } = parts;
  return gateEndpoint({
    trustedGateways: parseNetworks(config.gateTrustedGateways),
    decide: (original, presented) => decide({
      routes,
      checkToken: (request) => providers.current().gateTokens.check(request),
      routeLimiter: (points) => parts.limiters.route(points),
      audit: parts.audit,
    }, original, presented),
    certificateThumbprint: (req) => parts.clientCertificates.fromRequest(req)?.thumbprint,
    envoyCertificateProxies: config.gateEnvoyClientCert ? parseNetworks(config.mtls.proxies) : undefined,
    trustProxy: config.trustProxy,
    issuerPath: parts.prefix,
    draining: parts.draining,
    metrics: parts.metrics,
    logger,
  });
}

export async function buildApp(options: BuildAppOptions): Promise<App> {
  const { config, database, logger } = options;
  // A server checks passwords: argon2, a native module the CLI loads only when it needs it, is
  // loaded now, so that a broken install stops the start rather than the first sign-in.
  await import('./domain/passwords.ts');
  const artifactKey = ArtifactKey.fromSecret(options.artifactKey);
  const now = options.now ?? Date.now;
  const metrics = options.metrics ?? createMetrics();
  metrics.watchPool(database.pool);
  metrics.watchSigningKeys(async () => (await listKeys(database.db, now()))
    .filter((key) => key.state !== 'retired')
    .map((key) => ({ kid: key.kid, createdAt: new Date(key.createdAt) })));
  const limits = await openLimits(config, database, logger);
  let draining = false;
  // This process registers when the feed connects, before anything caches.
  const propagation = new Propagation(database.db, database.changes);
  const directory = new Directory(database.db, propagation);
  const routes = new LiveRoutes(database.db, propagation);
  await propagation.start();
  await routes.start();
  const audit = new AuditLog(database.db, { logger });
  const parts: Parts = {
    options,
    routes: options.gateRoutes ?? routes,
    artifactKey,
    prefix: new URL(config.issuer).pathname.replace(/\/$/, ''),
    now,
    metrics,
    limiters: limits.limiters,
    directory,
    audit,
    pages: createPages(),
    clientCertificates: new ClientCertificates(config.mtls, options.clientAuthorities),
    protection: new LoginProtection(database.db, config.login, now),
    // RFC 7523 §3 item 3: the assertion's audience is Postern, by its issuer or token endpoint.
    trustedJwts: new TrustedJwtVerifier({
      db: database.db,
      changes: propagation,
      artifactKey,
      defaultAudience: [config.issuer, `${config.issuer.replace(/\/$/, '')}${PROVIDER_ROUTES.token}`],
      settings: config.trustedJwts,
      now,
    }),
    draining: () => draining,
  };
  const providers = await startProviders(parts, propagation);
  const admin = buildAdminApi(parts, providers);
  const observe = observeRequests(metrics, logger, parts.prefix);
  const adminConsole = buildConsole(parts, providers);
  await registerConsoleApp(database.db, consoleUrls({ consoleOrigin: consoleOrigin(config) }));
  const koa = buildPublicApp(parts, providers, admin, observe, config.admin ? undefined : adminConsole);
  const maintenance = startMaintenance({
    db: database.db,
    logger,
    audit,
    artifactKey: parts.artifactKey,
    protection: parts.protection,
    keyring: options.keyring,
    pruneIntervalSeconds: config.pruneIntervalSeconds,
    auditRetentionDays: config.auditRetentionDays,
    keyRotation: config.keyRotation,
    now,
    onKeyRotation: options.onKeyRotation,
    reloadKeys: () => providers.refresh(),
  });

  return {
    koa,
    get provider() {
      return providers.current().provider;
    },
    providers,
    propagation,
    directory,
    routes,
    // The admin listener's requests are logged and counted like the public ones.
    adminKoa: adminApp((ctx, next) => observe(ctx, () => adminConsole(ctx, () => admin.middleware(ctx, next))), {
      proxy: config.trustProxy, keys: options.cookieKeys,
    }),
    audit,
    metrics,
    limiters: limits.limiters,
    clientCertificates: parts.clientCertificates,
    drain: () => { draining = true; },
    close: async () => {
      await maintenance.close();
      await providers.close();
      await audit.close();
      await limits.store.close();
      await directory.close();
      parts.trustedJwts.close();
      routes.close();
      await propagation.close();
      await database.changes?.close();
    },
  };
}
