// Readiness follows the database: /readyz turns 503 when Postgres becomes unreachable (here: the
// TCP proxy between the server and Postgres is cut), and 200 again when it returns, and the
// server serves tokens again without a restart. Errors meanwhile are JSON, never a hang.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, onPostgres, TEST_DATABASE_URL, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { cleanUp, freePort, ServerProcess } from './support/process.ts';
import { postForm, startServer, TEST_MASTER_KEY, type TestServer } from './support/server.ts';
import { TcpProxy } from './support/tcp-proxy.ts';

let tdb: TestDatabase;
let proxy: TcpProxy;
let server: ServerProcess;
let url: string;

afterAll(async () => {
  if (process.env.SHOW_OUTPUT) console.log(server?.output);
  await cleanUp();
  await proxy?.restore();
  await tdb?.drop();
}, 60_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function readiness(): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.json() };
}

/** Polls /readyz until it answers `status`; returns how long that took. */
async function waitForReadiness(status: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  let last: unknown;
  while (Date.now() - started < timeoutMs) {
    const answer = await readiness();
    if (answer.status === status) return Date.now() - started;
    last = answer;
    await sleep(200);
  }
  throw new Error(`/readyz did not answer ${status} within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}

describe.skipIf(!onPostgres)('readiness follows the database', () => {
  let client: { id: string; secret: string };
  let resource: string;

  beforeAll(async () => {
    tdb = await createTestDatabase();
    const db = tdb.database.db;
    resource = (await api(db, { scopes: ['orders:read'] })).identifier;
    const granted = await role(db, [{ api: resource, scopes: ['orders:read'] }]);
    client = await serviceClient(db, [granted.name]);
    const target = new URL(TEST_DATABASE_URL!);
    proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port || 5432) });
    const viaProxy = new URL(tdb.url!);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    server = new ServerProcess({
      DATABASE_URL: viaProxy.href, PORT: String(port), ISSUER: url, LOG_LEVEL: 'info', POSTERN_MASTER_KEY: TEST_MASTER_KEY,
    });
    await server.waitUntilHealthy(url, 30_000);
  });

  it('is ready with the database, unready without it, and ready again when it returns', async () => {
    expect(await readiness()).toEqual({ status: 200, body: { status: 'ok' } });
    const before = await postForm(`${url}/token`, { grant_type: 'client_credentials', resource }, client);
    expect(before.status).toBe(200);

    await proxy.cut();
    await waitForReadiness(503, 10_000);
    const down = await readiness();
    expect(down.body).toEqual({ status: 'unavailable', problems: { database: 'unreachable' } });
    // Liveness stays green: the process is fine, restarting it would not help.
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    // A token request while the database is away: a JSON error, promptly, no stack.
    const started = Date.now();
    const during = await postForm(`${url}/token`, { grant_type: 'client_credentials', resource }, client);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(during.status).toBeGreaterThanOrEqual(500);
    expect(during.body.error).toBe('server_error');
    expect(JSON.stringify(during.body)).not.toMatch(/ECONNREFUSED|\bat\s/);

    await proxy.restore();
    await waitForReadiness(200, 20_000);
    const after = await postForm(`${url}/token`, { grant_type: 'client_credentials', resource }, client);
    expect(after.status, JSON.stringify(after.body)).toBe(200);
    const introspected = await postForm(`${url}/token/introspection`, { token: after.body.access_token }, client);
    expect(introspected.body.active).toBe(true);
    expect(server.running).toBe(true);
  }, 90_000);

  it('stops cleanly on SIGTERM after the database came back', async () => {
    const exit = await server.stop('SIGTERM', 30_000);
    expect(exit, server.output).toEqual({ code: 0, signal: null });
    expect(server.stdout).toMatch(/"msg":"stopping"/);
    expect(server.stdout).toMatch(/"msg":"stopped"/);
  }, 40_000);
});

describe('a flood of readiness probes', () => {
  let local: TestDatabase;
  let started: TestServer;

  beforeAll(async () => {
    local = await createTestDatabase();
    started = await startServer(local.database);
  }, 60_000);

  afterAll(async () => {
    await started?.close();
    await local?.drop();
  });

  /** Database checks /readyz has made so far, from /metrics. */
  async function checksMade(): Promise<number> {
    const text = await (await fetch(`${started.url}/metrics`)).text();
    const line = text.split('\n').find((entry) => entry.startsWith('postern_readiness_checks_total '));
    expect(line, 'postern_readiness_checks_total in /metrics').toBeDefined();
    return Number(line!.split(' ')[1]);
  }

  it('costs the database at most one check a second, shared by concurrent probes', async () => {
    const before = await checksMade();
    const began = Date.now();
    const concurrent = await Promise.all(Array.from({ length: 50 }, () => fetch(`${started.url}/readyz`)));
    expect(concurrent.map((res) => res.status)).toEqual(Array(50).fill(200));
    for (let i = 0; i < 30; i += 1) expect((await fetch(`${started.url}/readyz`)).status).toBe(200);
    const seconds = (Date.now() - began) / 1000;
    // One look per second at most (plus the one under way when a second ends).
    expect(await checksMade() - before).toBeLessThanOrEqual(Math.floor(seconds) + 2);
    expect(await checksMade() - before).toBeLessThan(10);
  });

  it('still shows a shutdown at once', async () => {
    expect((await fetch(`${started.url}/readyz`)).status).toBe(200);
    started.app.drain();
    const res = await fetch(`${started.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'unavailable', problems: { process: 'shutting down' } });
  });
});
