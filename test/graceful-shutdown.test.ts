// Two Postern processes on one Postgres, as behind a load balancer: request limits hold across
// both (their counters live in Postgres), and when one gets SIGTERM under load, what it had in
// flight completes, nothing fails on the survivor, and every token issued before the stop
// introspects correctly on the survivor. Postgres only: the embedded store is single-process.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { cleanUp, freePort, ServerProcess } from './support/process.ts';
import { postForm, TEST_MASTER_KEY } from './support/server.ts';

type Credentials = { id: string; secret: string };

let tdb: TestDatabase;
let a: ServerProcess;
let b: ServerProcess;
let urlA: string;
let urlB: string;
let resource: string;
let worker: Credentials;
let limited: Credentials;

afterAll(async () => {
  await cleanUp();
  await tdb?.drop();
}, 60_000);

async function start(port: number, issuer: string, limitedId: string): Promise<ServerProcess> {
  const server = new ServerProcess({
    DATABASE_URL: tdb.url!,
    PORT: String(port),
    ISSUER: issuer,
    LOG_LEVEL: 'info',
    POSTERN_MASTER_KEY: TEST_MASTER_KEY,
    RATE_LIMIT_STORE: 'postgres',
    RATE_LIMIT_CLIENT_OVERRIDES: `${limitedId}=5`,
    SHUTDOWN_TIMEOUT_SECONDS: '10',
    // A connection the kernel accepted but the process had not yet taken is reset when the
    // listener closes; the delay lets the load balancer (below) see /readyz fail first.
    SHUTDOWN_DELAY_SECONDS: '1',
  });
  await server.waitUntilHealthy(`http://127.0.0.1:${port}`, 40_000);
  return server;
}

const tokenAt = (url: string, client: Credentials) =>
  postForm(`${url}/token`, { grant_type: 'client_credentials', resource }, client);

/**
 * A token request on a connection of its own (no keep-alive), so that an error tells what
 * happened: ECONNREFUSED means the server did not take the request; anything else (a reset, a
 * closed socket) means a request it had taken was cut.
 */
function tokenOnNewConnection(url: string, client: Credentials): Promise<{ status: number; body: any }> {
  const body = new URLSearchParams({ grant_type: 'client_credentials', resource }).toString();
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/token`, {
      method: 'POST',
      agent: false,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'content-length': Buffer.byteLength(body),
        authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`,
      },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => { text += chunk; });
      res.once('end', () => {
        try {
          resolve({ status: res.statusCode!, body: JSON.parse(text) });
        } catch (error) {
          reject(error);
        }
      });
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(body);
  });
}

describe.skipIf(!onPostgres)('two processes sharing Postgres', () => {
  beforeAll(async () => {
    tdb = await createTestDatabase();
    const db = tdb.database.db;
    resource = (await api(db, { scopes: ['jobs:run'] })).identifier;
    const granted = await role(db, [{ api: resource, scopes: ['jobs:run'] }]);
    worker = await serviceClient(db, [granted.name]);
    limited = await serviceClient(db, [granted.name]);
    const [portA, portB] = [await freePort(), await freePort()];
    urlA = `http://127.0.0.1:${portA}`;
    urlB = `http://127.0.0.1:${portB}`;
    // One public name for both, as behind a load balancer. A creates the keys, B loads them.
    a = await start(portA, urlA, limited.id);
    b = await start(portB, urlA, limited.id);
  }, 120_000);

  it('hold one request limit across both processes', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 7; i += 1) statuses.push((await tokenAt(i % 2 ? urlB : urlA, limited)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
  });

  it('lose nothing when one of them stops under load', async () => {
    const before: string[] = [];
    for (let i = 0; i < 10; i += 1) {
      for (const url of [urlA, urlB]) {
        const res = await tokenAt(url, worker);
        expect(res.status).toBe(200);
        before.push(res.body.access_token);
      }
    }

    // A bounded load: 8 loops for 4 s, alternating between the two processes. Like a load
    // balancer, it polls A's /readyz and stops sending to A once that fails, and a request A
    // refuses to connect is sent to B instead; a request A took and did not answer is a failure.
    let aInRotation = true;
    const poller = setInterval(() => {
      // A probe that is merely slow (this machine is busy) does not count against A.
      fetch(`${urlA}/readyz`, { signal: AbortSignal.timeout(2000) }).then(
        (res) => { if (res.status !== 200) aInRotation = false; },
        (error: Error) => { if ((error.cause as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED') aInRotation = false; },
      );
    }, 100);
    const counts = { a: 0, b: 0, aAfterStop: 0, rerouted: 0 };
    const failures: string[] = [];
    const issued: string[] = [];
    let stopSentAt = 0;
    const deadline = Date.now() + 4000;
    const loop = async (n: number) => {
      let turn = n;
      while (Date.now() < deadline) {
        const toA = turn++ % 2 === 0 && aInRotation;
        const sentAt = Date.now();
        try {
          const res = await tokenOnNewConnection(toA ? urlA : urlB, worker);
          if (res.status !== 200) failures.push(`${toA ? 'A' : 'B'} answered ${res.status} ${JSON.stringify(res.body)}`);
          else issued.push(res.body.access_token);
          if (toA) {
            counts.a += 1;
            if (stopSentAt && sentAt < stopSentAt) counts.aAfterStop += 1;
          } else counts.b += 1;
        } catch (error) {
          if (!toA) {
            failures.push(`B: ${(error as Error).message}`);
          } else if (!stopSentAt || (error as NodeJS.ErrnoException).code !== 'ECONNREFUSED') {
            failures.push(`A ${stopSentAt ? 'after' : 'before'} its stop: ${(error as Error).message}`);
          } else {
            counts.rerouted += 1;
            const retry = await tokenAt(urlB, worker);
            if (retry.status !== 200) failures.push(`B (rerouted) answered ${retry.status}`);
          }
        }
      }
    };
    const stopper = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      // One request surely in flight at the signal (the loops' may all be between requests, or
      // have left A already if its readiness probe was slow on a busy machine): sent, then the
      // signal; it must still be answered.
      const inFlight = tokenOnNewConnection(urlA, worker).then(
        (res) => { if (res.status === 200) counts.aAfterStop += 1; else failures.push(`A (in flight at its stop) answered ${res.status}`); },
        (error: Error) => { failures.push(`A (in flight at its stop): ${error.message}`); },
      );
      stopSentAt = Date.now();
      const exit = await a.stop('SIGTERM', 20_000);
      await inFlight;
      return exit;
    })();
    await Promise.all([...Array.from({ length: 8 }, (_, n) => loop(n)), stopper]);
    clearInterval(poller);
    const exit = await stopper;

    if (process.env.SHOW_COUNTS) console.log(JSON.stringify({ ...counts, issued: issued.length }));
    expect(failures).toEqual([]);
    expect(exit, a.output).toEqual({ code: 0, signal: null });
    expect(counts.a).toBeGreaterThan(0);
    expect(counts.b).toBeGreaterThan(counts.a);
    // A answered requests it had taken before the signal, after the signal.
    expect(counts.aAfterStop, JSON.stringify(counts)).toBeGreaterThan(0);
    expect(a.stdout).toMatch(/"msg":"stopping"[\s\S]*"msg":"stopped"/);
    expect(a.stdout).not.toMatch(/still in flight at the shutdown deadline/);

    // Every token issued before the stop, and a sample of those issued under load, on B.
    const sample = [...before, ...issued.filter((_, i) => i % Math.max(1, Math.floor(issued.length / 40)) === 0)];
    for (const value of sample) {
      const res = await postForm(`${urlB}/token/introspection`, { token: value }, worker);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ active: true, client_id: worker.id, aud: resource });
    }
    expect(b.running).toBe(true);
  }, 60_000);
});
