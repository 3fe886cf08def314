// One serving process: the public listener (and the admin and metrics listeners when configured),
// and its graceful stop on SIGTERM. Run by main.ts, alone or as a cluster worker.
import cluster from 'node:cluster';
import http from 'node:http';
import https from 'node:https';
import { AggregatorRegistry } from 'prom-client';
import { buildApp } from './app.ts';
import type { Config } from './config.ts';
import type { Database } from './db/database.ts';
import { metricsServer } from './http/metrics-server.ts';
import type { Logger } from './platform/logger.ts';
import type { KeyMaterial, Keyring } from './services/keys.ts';
import { httpsOptions, watchTlsFiles, type TlsMaterial } from './platform/tls.ts';

export const STOP_MESSAGE = 'postern:stop';

function createServer(handler: http.RequestListener, tlsOptions?: https.ServerOptions): http.Server {
  const created = tlsOptions ? https.createServer(tlsOptions, handler) : http.createServer(handler);
  created.headersTimeout = 10_000;
  created.requestTimeout = 30_000;
  created.keepAliveTimeout = 5_000;
  return created;
}

export interface ServeOptions {
  config: Config;
  database: Database;
  logger: Logger;
  keys: KeyMaterial;
  /** The master key (and the next one during a master-key rotation): opens the signing keys. */
  keyring: Keyring;
  /** A cluster worker: the primary serves the aggregated metrics. */
  clustered: boolean;
  /** Printed on stdout once listening (development). */
  banner: string | undefined;
  /** The certificate of the public listener (HTTPS) and the CAs of client certificates. */
  tls: TlsMaterial;
}

function failStart(lines: string[]): never {
  process.stderr.write(`Postern cannot start:\n${lines.map((line) => `  - ${line}`).join('\n')}\n`);
  process.exit(1);
}

export async function serve(options: ServeOptions): Promise<void> {
  const { config, database } = options;
  // A cluster primary asks its workers to stop with a message, possibly while this one is still
  // starting: remember it, and stop as soon as there is something to stop.
  let stopRequested = false;
  let onStopMessage = () => { stopRequested = true; };
  process.on('message', (message) => { if (message === STOP_MESSAGE) onStopMessage(); });
  // In a cluster, each line says which worker wrote it.
  const logger = options.clustered && cluster.worker ? options.logger.child({ worker: cluster.worker.id }) : options.logger;
  const app = await buildApp({
    config, database, logger, cookieKeys: options.keys.cookieKeys, dpopNonceSecret: options.keys.dpopNonceSecret,
    artifactKey: options.keys.artifactKey, keyring: options.keyring,
    clientAuthorities: options.tls.authorities,
  });
  if (options.clustered) {
    // Constructing one installs the worker's answer to the primary's metrics requests.
    void new AggregatorRegistry();
    AggregatorRegistry.setRegistries([app.metrics.registry]);
  }

  const tlsOptions = options.tls.server ? httpsOptions(options.tls) : undefined;
  const server = createServer(app.koa.callback(), tlsOptions);
  // The admin API's own listener (ADMIN_PORT), apart from the public endpoints; HTTPS as well when
  // Postern serves TLS, so that certificate-bound admin tokens work there too.
  const adminServer = config.admin ? createServer(app.adminKoa.callback(), tlsOptions) : undefined;
  // Renewed certificate, key or CA files: new connections use them, without a restart.
  const stopWatching = watchTlsFiles(config, (material) => {
    for (const listener of [server, adminServer]) {
      if (material.server && listener instanceof https.Server) listener.setSecureContext(httpsOptions(material));
    }
    app.clientCertificates.setAuthorities(material.authorities);
    logger.info({ authorities: material.authorities.length }, 'TLS files reloaded');
  }, (error) => logger.error({ err: error }, 'the changed TLS files cannot be used; still serving with the previous ones'));
  const metricsListener = config.metrics.port !== undefined && !options.clustered
    ? metricsServer(() => app.metrics.registry.metrics(), app.metrics.registry.contentType)
    : undefined;
  const listeners = [server, adminServer, metricsListener].filter((each): each is http.Server => each !== undefined);

  const listenOrFail = async (target: http.Server, host: string, port: number, what: string) => {
    await new Promise<void>((resolve, reject) => {
      target.once('error', reject);
      target.listen(port, host, () => resolve());
    }).catch(async (error: Error) => {
      listeners.forEach((each) => each.close());
      await app.close();
      await database.close();
      failStart([`cannot listen${what ? ` ${what}` : ''} on ${host}:${port}: ${error.message}`]);
    });
  };
  await listenOrFail(server, config.host, config.port, '');
  if (adminServer && config.admin) await listenOrFail(adminServer, config.admin.host, config.admin.port, 'for the admin API');
  if (metricsListener && config.metrics.port !== undefined) {
    await listenOrFail(metricsListener, config.metrics.host, config.metrics.port, 'for metrics');
  }

  if (options.banner) process.stdout.write(options.banner);
  logger.info({
    issuer: config.issuer, host: config.host, port: config.port, admin: config.admin ?? 'public listener', tls: Boolean(options.tls.server),
    mode: config.mode, store: database.kind, limits: app.limiters.store,
  }, 'listening');

  let stopping = false;
  /**
   * Graceful stop: report unready and keep serving for SHUTDOWN_DELAY_SECONDS (a load balancer
   * stops sending meanwhile; connections it opened still get answers), then refuse new
   * connections, let in-flight requests finish (each connection closes after its response)
   * within SHUTDOWN_TIMEOUT_SECONDS, stop background work (flushing what is buffered) and close
   * the pool.
   */
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    app.drain();
    if (config.shutdownDelaySeconds > 0) {
      await new Promise((resolve) => setTimeout(resolve, config.shutdownDelaySeconds * 1000));
    }
    stopWatching();
    const closed = listeners.map((each) => new Promise((resolve) => each.once('close', resolve)));
    for (const each of listeners) each.close();
    // A keep-alive connection between two requests holds no work: let each go once idle.
    const idle = setInterval(() => listeners.forEach((each) => each.closeIdleConnections()), 50);
    listeners.forEach((each) => each.closeIdleConnections());
    const force = setTimeout(() => {
      logger.warn({ afterSeconds: config.shutdownTimeoutSeconds }, 'requests still in flight at the shutdown deadline; closing their connections');
      listeners.forEach((each) => each.closeAllConnections());
    }, config.shutdownTimeoutSeconds * 1000);
    await Promise.all(closed);
    clearInterval(idle);
    clearTimeout(force);
    await app.close().catch((error: unknown) => logger.error({ err: error }, 'stopping background work failed'));
    await database.close().catch((error: unknown) => logger.error({ err: error }, 'closing the database failed'));
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  onStopMessage = () => void stop('primary');
  if (stopRequested) onStopMessage();
}
