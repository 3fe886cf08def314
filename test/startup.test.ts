// Starting and stopping the server as an operator does: `node src/main.ts` in a child process,
// configured only through its environment.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import {
  cleanUp, describeRun, freePort, MAIN, makeTempDir, postern, run, ServerProcess, type Env, type RunResult,
} from './support/process.ts';
import { postForm, TEST_MASTER_KEY } from './support/server.ts';

const MASTER_KEY_REQUIRED = 'POSTERN_MASTER_KEY or POSTERN_MASTER_KEY_FILE is required in production (32 random bytes in base64, '
  + 'e.g. from `openssl rand -base64 32`; see docs/master-key.md)';

const databases: TestDatabase[] = [];

afterAll(async () => {
  await cleanUp();
  for (const tdb of databases) await tdb.drop();
}, 60_000);

async function testDatabase(): Promise<TestDatabase> {
  const tdb = await createTestDatabase();
  databases.push(tdb);
  return tdb;
}

/** The "  - problem" lines of a refused start. */
function problems(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('  - ')).map((line) => line.slice(4));
}

/** A start that must be refused at once: exit 1, "Postern cannot start:" and its problems, no stack. */
function expectRefused(result: RunResult): string[] {
  const what = describeRun(['src/main.ts'], result, 'node');
  expect(result.timedOut, what).toBe(false);
  expect(result.code, what).toBe(1);
  expect(result.ms, `a refused start should be quick: ${what}`).toBeLessThan(15_000);
  expect(result.stderr, what).toMatch(/^Postern cannot start:\n(  - [^\n]+\n)+$/);
  expect(result.stderr).not.toMatch(/^\s+at /m);
  return problems(result.stderr);
}

const startServer = (env: Env) => run([MAIN], { env, timeoutMs: 30_000 });

// ---------------------------------------------------------------------------------------------

describe('production refuses a configuration it cannot run with', () => {
  it('with no configuration: lists ISSUER, DATABASE_URL and the master key at once', async () => {
    const result = await startServer({ NODE_ENV: 'production' });
    expect(expectRefused(result)).toEqual([
      'ISSUER is required in production (the public https URL of this server)',
      'DATABASE_URL is required in production (the embedded database is for development only)',
      MASTER_KEY_REQUIRED,
    ]);
    expect(result.stdout).toBe('');
  });

  it('with a plain-http issuer that is not loopback: lists the https problem', async () => {
    const result = await startServer({ NODE_ENV: 'production', ISSUER: 'http://auth.example.com' });
    expect(expectRefused(result)).toEqual([
      'ISSUER must use https in production, got "http://auth.example.com"',
      'DATABASE_URL is required in production (the embedded database is for development only)',
      MASTER_KEY_REQUIRED,
    ]);
  });
});

describe.skipIf(!onPostgres)('production on Postgres', () => {
  it('refuses a database without signing keys, and starts once `postern keys generate` made them', async () => {
    const tdb = await testDatabase();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env: Env = {
      NODE_ENV: 'production', ISSUER: 'https://auth.example.com', DATABASE_URL: tdb.url, HOST: '127.0.0.1', PORT: String(port),
      POSTERN_MASTER_KEY: TEST_MASTER_KEY,
    };

    const refused = await startServer(env);
    expect(expectRefused(refused)).toEqual([
      'the database holds no signing keys: create them with `postern keys generate`',
    ]);

    const keys = await postern(['keys', 'generate'], { DATABASE_URL: tdb.url, POSTERN_MASTER_KEY: TEST_MASTER_KEY });
    expect(keys.code, describeRun(['keys', 'generate'], keys)).toBe(0);
    expect(keys.stdout).toMatch(/^signing keys created\n/);

    const server = new ServerProcess(env);
    await server.waitUntilHealthy(url, 30_000);
    const health = await fetch(`${url}/healthz`);
    expect(await health.json()).toEqual({ status: 'ok' });
    const metadata = (await (await fetch(`${url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(metadata.issuer).toBe('https://auth.example.com');
    await server.waitForOutput(/"msg":"listening"/, 10_000);
    expect(server.stdout).toContain('"mode":"production"');
    expect(server.stdout).not.toContain('DEVELOPMENT');

    expect(await server.stop('SIGTERM', 20_000), server.output).toEqual({ code: 0, signal: null });
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------

interface Credentials { id: string; secret: string }

async function clientCredentialsToken(url: string, client: Credentials): Promise<string> {
  const res = await postForm(`${url}/token`, { grant_type: 'client_credentials' }, client);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body).toMatchObject({ token_type: 'Bearer', scope: 'orders:read', expires_in: 300 });
  return res.body.access_token as string;
}

async function introspect(url: string, client: Credentials, token: string): Promise<Record<string, unknown>> {
  const res = await postForm(`${url}/token/introspection`, { token }, client);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as Record<string, unknown>;
}

/**
 * A development server: the banner, registration with the CLI while it runs, a token, a stop
 * with SIGTERM, and a restart after which that token still introspects active.
 */
function developmentRestart(options: {
  store: 'embedded' | 'postgres';
  /** The server's and the CLI's store settings; `keyDir` is POSTERN_DATA_DIR, where the master key is kept. */
  prepare(): Promise<{ storeEnv: Env; dataDir?: string; keyDir: string }>;
  firstStartMs: number;
}) {
  const embedded = options.store === 'embedded';
  let storeEnv: Env;
  let serverEnv: Env;
  let dataDir: string | undefined;
  let keyFile: string;
  let keyText: string;
  let port: number;
  let url: string;
  let first: ServerProcess;
  let billing: Credentials;
  let token: string;

  beforeAll(async () => {
    let keyDir: string;
    ({ storeEnv, dataDir, keyDir } = await options.prepare());
    keyFile = path.join(keyDir, 'master.key');
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    serverEnv = { ...storeEnv, PORT: String(port) };
  }, 60_000);

  const cli = async (args: string[]) => {
    const result = await postern(args, storeEnv);
    expect(result.code, describeRun(args, result)).toBe(0);
    return result.stdout;
  };

  it('starts in DEVELOPMENT mode and shows how to register a first client', async () => {
    first = new ServerProcess(serverEnv);
    await first.waitUntilHealthy(url, options.firstStartMs);
    await first.waitForOutput(/"msg":"listening"/, 10_000);
    const banner = first.stdout;
    expect(banner).toContain(`Postern is running in DEVELOPMENT mode at http://localhost:${port}\n`);
    expect(banner).toContain(`   - issuer defaults to http://localhost:${port}\n`);
    expect(banner).toContain('   - signing keys were just generated and stored in the database\n');
    // Development generates a master key beside the data, readable by its owner only, and says so.
    expect(banner).toContain(`   - master key kept in ${keyFile} (set POSTERN_MASTER_KEY in production)\n`);
    expect(banner).toContain(`   - a master key was just generated and written to ${keyFile} (mode 0600)\n`);
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    keyText = fs.readFileSync(keyFile, 'utf8');
    expect(keyText).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    expect(banner).not.toContain(keyText.trim());
    if (embedded) expect(banner).toContain(`   - embedded database in ${dataDir}\n`);
    else expect(banner).not.toContain('embedded database');
    expect(banner).toContain('npx postern apis create --identifier https://orders.internal --scopes "orders:read orders:write"');
    expect(banner).toContain('npx postern roles create orders-reader --grant "https://orders.internal orders:read"');
    expect(banner).toContain('npx postern clients create --name billing --role orders-reader');
    expect(banner).toContain(`curl -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials http://localhost:${port}/token`);
    expect(first.stderr).toBe('');
  }, options.firstStartMs + 30_000);

  if (embedded) {
    it('refuses a second server on the same data folder while the first runs', async () => {
      const second = await startServer({ ...storeEnv, PORT: String(await freePort()) });
      expect(expectRefused(second)).toEqual([
        `database: the embedded database in ${dataDir} is in use by a Postern server (PID ${first.pid})`,
      ]);
      expect(first.running).toBe(true);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
    }, 60_000);
  }

  it('lets the CLI register an API, a role and a client while it runs', async () => {
    await cli(['apis', 'create', '--identifier', 'https://orders.internal', '--scopes', 'orders:read orders:write']);
    await cli(['roles', 'create', 'orders-reader', '--grant', 'https://orders.internal orders:read']);
    const created = JSON.parse(await cli(['--json', 'clients', 'create', '--name', 'billing', '--role', 'orders-reader']));
    billing = { id: created.clientId, secret: created.clientSecret };
    expect(billing.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first.running).toBe(true);
  }, 90_000);

  it('issues a client-credentials token to that client', async () => {
    token = await clientCredentialsToken(url, billing);
    expect(await introspect(url, billing, token)).toMatchObject({
      active: true, client_id: billing.id, aud: 'https://orders.internal', scope: 'orders:read',
    });
  }, 30_000);

  it('stops on SIGTERM with exit status 0', async () => {
    expect(await first.stop('SIGTERM', 20_000), first.output).toEqual({ code: 0, signal: null });
    if (dataDir) {
      expect(fs.existsSync(path.join(dataDir, 'postern.pid'))).toBe(false);
      expect(fs.existsSync(path.join(dataDir, '.s.PGSQL.5432'))).toBe(false);
    }
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  }, 30_000);

  it('restarts on the same store: the token issued before still introspects active', async () => {
    const again = new ServerProcess(serverEnv);
    await again.waitUntilHealthy(url, 60_000);
    await again.waitForOutput(/"msg":"listening"/, 10_000);
    expect(again.stdout).toContain('DEVELOPMENT mode');
    // The keys come from the store now: nothing is generated on a restart.
    expect(again.stdout).not.toContain('signing keys were just generated');
    // The same master key, from the same file: nothing new is generated.
    expect(again.stdout).not.toContain('a master key was just generated');
    expect(fs.readFileSync(keyFile, 'utf8')).toBe(keyText);

    expect(await introspect(url, billing, token)).toMatchObject({
      active: true, client_id: billing.id, aud: 'https://orders.internal', scope: 'orders:read', iss: `http://localhost:${port}`,
    });
    const fresh = await clientCredentialsToken(url, billing);
    expect(await introspect(url, billing, fresh)).toMatchObject({ active: true });

    expect(await again.stop('SIGTERM', 20_000), again.output).toEqual({ code: 0, signal: null });
  }, 90_000);
}

describe('development on the embedded store', () => {
  developmentRestart({
    store: 'embedded',
    firstStartMs: 120_000,
    prepare: async () => {
      // A short path: the server's socket for the CLI lives in this folder.
      const dataDir = path.join(makeTempDir('pst-'), 'data');
      return { storeEnv: { POSTERN_DATA_DIR: dataDir }, dataDir, keyDir: dataDir };
    },
  });
});

describe.skipIf(!onPostgres)('development on Postgres', () => {
  developmentRestart({
    store: 'postgres',
    firstStartMs: 30_000,
    prepare: async () => {
      const tdb = await testDatabase();
      // DATABASE_URL wins over POSTERN_DATA_DIR for the data; the development master key is still
      // kept in POSTERN_DATA_DIR, shared by the server and the CLI.
      const keyDir = path.join(makeTempDir('pst-'), 'keys');
      return { storeEnv: { DATABASE_URL: tdb.url, POSTERN_DATA_DIR: keyDir }, keyDir };
    },
  });
});
