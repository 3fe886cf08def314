// WORKERS=2: one primary and two workers serving one port on Postgres. Both workers answer,
// the primary serves the metrics of both on METRICS_PORT, a worker that dies is replaced, and
// SIGTERM to the primary stops everything cleanly.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { cleanUp, freePort, ServerProcess } from './support/process.ts';
import { postForm, TEST_MASTER_KEY } from './support/server.ts';

let tdb: TestDatabase;
let server: ServerProcess;
let url: string;
let metricsUrl: string;

afterAll(async () => {
  await cleanUp();
  await tdb?.drop();
}, 60_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const workersListening = () => (server.stdout.match(/"msg":"listening"/g) ?? []).length;
/** The primary's lines about workers that exited: which, and how. */
const deaths = () => server.stdout.split('\n').filter((line) => line.includes('"msg":"worker exited; starting another"'))
  .map((line) => JSON.parse(line) as { worker: number; code: unknown; signal: unknown })
  .map(({ worker, code, signal }) => ({ worker, code, signal }));

async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms\n${server.output}`);
    await sleep(200);
  }
}

describe.skipIf(!onPostgres)('a cluster of two workers', () => {
  let client: { id: string; secret: string };
  let resource: string;

  beforeAll(async () => {
    tdb = await createTestDatabase();
    resource = (await api(tdb.database.db, { scopes: ['jobs:run'] })).identifier;
    client = await serviceClient(tdb.database.db, [(await role(tdb.database.db, [{ api: resource, scopes: ['jobs:run'] }])).name]);
    const [port, metricsPort] = [await freePort(), await freePort()];
    url = `http://127.0.0.1:${port}`;
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    server = new ServerProcess({
      DATABASE_URL: tdb.url!, PORT: String(port), ISSUER: url, WORKERS: '2', METRICS_PORT: String(metricsPort),
      LOG_LEVEL: 'info', POSTERN_MASTER_KEY: TEST_MASTER_KEY,
    });
    await until('two workers listening', () => workersListening() === 2, 60_000);
  }, 90_000);

  it('serves from both workers and sums their metrics on the metrics port', async () => {
    for (let i = 0; i < 20; i += 1) {
      const res = await postForm(`${url}/token`, { grant_type: 'client_credentials', resource }, client);
      expect(res.status).toBe(200);
    }
    const lines = server.stdout.split('\n').filter((line) => line.includes('"route":"/token"')).map((line) => JSON.parse(line));
    expect(new Set(lines.map((line) => line.worker)).size).toBe(2);
    const metrics = await (await fetch(metricsUrl)).text();
    expect(metrics).toContain(`postern_tokens_issued_total{grant_type="client_credentials",api="${resource}"} 20`);
    // The public listener does not serve them (production would not either).
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
  });

  it('replaces a worker that dies', async () => {
    const before = workersListening();
    // The workers are the children of the primary, the process started here.
    const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(server.pid)], { encoding: 'utf8' })
      .split('\n').map((line) => Number(line.trim())).filter(Boolean);
    expect(children).toHaveLength(2);
    process.kill(children[0]!, 'SIGKILL');
    await until('a new worker listening', () => workersListening() === before + 1, 60_000);
    // The death line says how it died: the exit code (none when killed) and the signal.
    expect(deaths()).toEqual([{ worker: children[0], code: null, signal: 'SIGKILL' }]);
    expect((await postForm(`${url}/token`, { grant_type: 'client_credentials', resource }, client)).status).toBe(200);
    // A worker stopped on its own exits 0 after its graceful stop; that is said too.
    process.kill(children[1]!, 'SIGTERM');
    await until('another new worker listening', () => workersListening() === before + 2, 60_000);
    expect(deaths()[1]).toEqual({ worker: children[1], code: 0, signal: null });
  }, 120_000);

  it('stops every worker on SIGTERM and exits 0', async () => {
    const stopped = () => (server.stdout.match(/"msg":"stopped"/g) ?? []).length;
    const before = stopped();
    const exit = await server.stop('SIGTERM', 40_000);
    expect(exit, server.output).toEqual({ code: 0, signal: null });
    // Both workers, then the primary.
    expect(stopped() - before).toBe(3);
  }, 60_000);
});
