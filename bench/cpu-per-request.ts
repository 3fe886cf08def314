// `node bench/cpu-per-request.ts`: CPU time each server spends per request, for the decision
// endpoint (JWT), Postern's JWT and opaque introspection and bare oidc-provider's opaque introspection. On a
// shared machine, throughput follows whatever else runs; the CPU a server process spends per
// answer (read from /proc after a fixed number of requests) moves far less, so its ratios say
// what the throughput ratios would be on a machine of one's own. Linux only.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import autocannon from 'autocannon';
import { createBenchDatabase, register } from './bench-db.ts';
import { Child, freePort } from './children.ts';
import { decisionProbe, registerGateRoute } from './gateway.ts';
import { introspectionProbe, check, type Probe, type Server } from './load.ts';
import { JWT_RESOURCE, OPAQUE_RESOURCE } from './resources.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000);

/** User + system CPU of a process so far, in microseconds. */
function cpuOf(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks / 100) * 1e6;
}

async function cpuPerRequest(pid: number, probe: Probe): Promise<number> {
  await check(probe, probe.url);
  const run = (amount: number) => autocannon({
    url: probe.url, method: probe.method ?? 'POST', headers: probe.headers,
    body: probe.method === 'GET' ? undefined : probe.body, connections: 32, amount, verifyBody: probe.ok,
  });
  await run(2000); // warm-up
  const before = cpuOf(pid);
  const result = await run(REQUESTS);
  if (result.non2xx || result.errors || result.mismatches) throw new Error(`${probe.url}: failed requests`);
  return (cpuOf(pid) - before) / REQUESTS;
}

const database = await createBenchDatabase(process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres');
const children: Child[] = [];
try {
  const credentials = await register(database.url);
  await registerGateRoute(database.url);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const postern = new Child('Postern', 'src/main.ts', {
    NODE_ENV: 'development', POSTERN_MASTER_KEY: randomBytes(32).toString('base64'), DATABASE_URL: database.url, LOG_LEVEL: 'warn',
    RATE_LIMIT_CLIENT: '10000000', RATE_LIMIT_ADDRESS: '10000000', WORKERS: '1', PORT: String(port), ISSUER: url,
  }, ROOT);
  children.push(postern);
  await postern.waitUntilReady(`${url}/healthz`);
  const bareCredentials = { clientId: 'bench-baseline', clientSecret: randomBytes(32).toString('base64url') };
  const barePort = await freePort();
  const bare = new Child('bare', 'bench/bare-provider.ts', {
    PORT: String(barePort), BENCH_CLIENT_ID: bareCredentials.clientId, BENCH_CLIENT_SECRET: bareCredentials.clientSecret,
  }, ROOT);
  children.push(bare);
  await bare.waitUntilReady(`http://127.0.0.1:${barePort}/.well-known/openid-configuration`);
  const posternServer: Server = { label: 'Postern', url, ...credentials };
  const bareServer: Server = { label: 'bare', url: `http://127.0.0.1:${barePort}`, ...bareCredentials };
  const rows: [string, number][] = [];
  for (let round = 0; round < 3; round += 1) {
    rows.push(['Postern, gateway decision (JWT)', await cpuPerRequest(postern.pid!, await decisionProbe(posternServer))]);
    rows.push(['Postern, introspection (JWT)', await cpuPerRequest(postern.pid!, await introspectionProbe(posternServer, JWT_RESOURCE, 'jwt'))]);
    rows.push(['Postern, introspection (opaque)', await cpuPerRequest(postern.pid!, await introspectionProbe(posternServer, OPAQUE_RESOURCE, 'opaque'))]);
    rows.push(['bare oidc-provider, introspection (opaque)', await cpuPerRequest(bare.pid!, await introspectionProbe(bareServer, OPAQUE_RESOURCE, 'opaque'))]);
  }
  const median = (label: string) => {
    const values = rows.filter(([name]) => name === label).map(([, value]) => value).sort((a, b) => a - b);
    return values[Math.floor(values.length / 2)]!;
  };
  const labels = [...new Set(rows.map(([name]) => name))];
  const bareCost = median('bare oidc-provider, introspection (opaque)');
  console.log(`CPU per request (median of 3 rounds of ${REQUESTS} requests, 32 connections):`);
  for (const label of labels) {
    const cost = median(label);
    console.log(`  ${label.padEnd(44)} ${cost.toFixed(0).padStart(5)} us  (${(1e6 / cost).toFixed(0)} req/s per core; ${(bareCost / cost).toFixed(2)}x bare)`);
  }
} finally {
  for (const child of children) await child.stop();
  await database.drop();
}
