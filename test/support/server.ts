// Runs Postern in-process on a random loopback port, over a test database, speaking real HTTP.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { buildApp, prepareKeys, type App, type BuildAppOptions } from '../../src/app.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import type { Database } from '../../src/db/database.ts';
import { ArtifactKey } from '../../src/domain/artifact-hashing.ts';
import { MasterKey } from '../../src/domain/key-encryption.ts';
import { createLogger, type Logger } from '../../src/platform/logger.ts';
import { httpsOptions, type TlsMaterial } from '../../src/platform/tls.ts';

/** The master key of in-process servers unless a test passes POSTERN_MASTER_KEY (one per test file). */
export const TEST_MASTER_KEY = MasterKey.generate('POSTERN_MASTER_KEY').exportText();

export interface TestServer {
  url: string;
  config: Config;
  app: App;
  /** Where an artifact with this value is stored (ids are keyed hashes of the value). */
  storedId(model: string, value: string): string;
  close(): Promise<void>;
}

export async function startServer(
  database: Database,
  env: Record<string, string> = {},
  issuerPath = '',
  options: Pick<BuildAppOptions, 'now' | 'onKeyRotation' | 'gateRoutes'> & {
    logger?: Logger; tls?: TlsMaterial;
    /** The port of an earlier server, to take its place (same issuer, same cookies). */
    port?: number;
  } = {},
): Promise<TestServer> {
  // With `tls`: HTTPS as src/serve.ts serves it (client certificates asked for, never required).
  const server = options.tls?.server ? https.createServer(httpsOptions(options.tls)) : http.createServer();
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `${options.tls?.server ? 'https' : 'http'}://127.0.0.1:${port}${issuerPath}`;
  const { config, problems } = loadConfig({ ISSUER: url, PORT: String(port), PRUNE_INTERVAL_SECONDS: '0', POSTERN_MASTER_KEY: TEST_MASTER_KEY,
    // Sign-in suites post many forms and start many sign-ins from one address; the limits have
    // tests of their own.
    RATE_LIMIT_SIGN_IN_ADDRESS: '0', RATE_LIMIT_AUTHORIZE_ADDRESS: '0', ...env });
  if (problems.length) throw new Error(problems.join('; '));
  const { keys } = await prepareKeys(config, database, [config.masterKey!]);
  const { logger = createLogger('silent'), tls, port: _, ...rest } = options;
  const app = await buildApp({
    config, database, logger, cookieKeys: keys.cookieKeys, dpopNonceSecret: keys.dpopNonceSecret, artifactKey: keys.artifactKey, keyring: [config.masterKey!],
    clientAuthorities: tls?.authorities, ...rest,
  });
  server.on('request', app.koa.callback());
  return {
    url,
    config,
    app,
    storedId: (model, value) => ArtifactKey.fromSecret(keys.artifactKey).storedId(model, value),
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await app.close();
    },
  };
}

/** POSTs a form with optional Basic credentials; returns status, headers and parsed body. */
export async function postForm(
  url: string,
  form: Record<string, string>,
  credentials?: { id: string; secret: string },
): Promise<{ status: number; headers: Headers; body: any }> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (credentials) {
    headers.authorization = `Basic ${Buffer.from(
      `${encodeURIComponent(credentials.id)}:${encodeURIComponent(credentials.secret)}`,
    ).toString('base64')}`;
  }
  const response = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(form).toString() });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : text;
  } catch {}
  return { status: response.status, headers: response.headers, body };
}
