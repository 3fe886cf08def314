// `node bench/cpu-per-request.ts`: CPU time each server spends per request. On a shared machine,
// throughput follows whatever else runs; the CPU a server process spends per answer (read from
// /proc after a fixed number of requests) moves far less, so its ratios say what the throughput
// ratios would be on a machine of one's own. Also shown: the part of it spent on the process's
// main thread (its event loop: what bounds one worker's throughput when the load saturates it;
// the rest ran on the thread pool, crypto mostly) and, for Postern, the CPU of its Postgres
// backends (the connections to the benchmark's database). Linux only.
//   BENCH_DATABASE_URL  Postgres server to create the throw-away database on
//   BENCH_REQUESTS      requests per round (default 20000)
//   CPU_ROOT            the checkout whose src/main.ts is measured (default this one; to compare)
//   CPU_ROUNDS          rounds, each scenario once per round in turn (default 3); the median shown
//   CPU_SCENARIOS       comma-separated, of: decision, introspect-jwt, introspect-opaque,
//                       bare-introspect, client-credentials, exchange, federated
//                       (default bare-introspect,decision,introspect-jwt,introspect-opaque); ratios are to the first
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { createBenchDatabase, register, type Credentials } from './bench-db.ts';
import { Child, freePort } from './children.ts';
import { federatedProbe, registerFederated, type FederatedWorld } from './federated.ts';
import { decisionProbe, registerGateRoute } from './gateway.ts';
import { check, exchangeProbe, freshRequests, introspectionProbe, tokenProbe, type Probe, type Server } from './load.ts';
import { EXCHANGE_TARGET, JWT_RESOURCE, OPAQUE_RESOURCE } from './resources.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000);
const ROUNDS = Math.max(1, Number(process.env.CPU_ROUNDS ?? 3));

/** User + system CPU of a process (or, with `thread`, of that thread of it) so far, in microseconds; 0 once it is gone. */
function cpuOf(pid: number, thread?: number): number {
  let stat: string;
  try {
    stat = fs.readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
  } catch {
    return 0;
  }
  const fields = stat.split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks / 100) * 1e6;
}

interface World {
  postern: Server; bare: Server; credentials: Credentials; federated: FederatedWorld;
  posternPid: number; barePid: number; databaseName: string; baseUrl: string;
}
interface Scenario { label: string; server: 'postern' | 'bare'; probe(world: World): Promise<Probe> }

const SCENARIOS: Record<string, Scenario> = {
  decision: { label: 'Postern, gateway decision (JWT)', server: 'postern', probe: ({ postern }) => decisionProbe(postern) },
  'introspect-jwt': { label: 'Postern, introspection (JWT)', server: 'postern', probe: ({ postern }) => introspectionProbe(postern, JWT_RESOURCE, 'jwt') },
  'introspect-opaque': { label: 'Postern, introspection (opaque)', server: 'postern', probe: ({ postern }) => introspectionProbe(postern, OPAQUE_RESOURCE, 'opaque') },
  'bare-introspect': { label: 'bare oidc-provider, introspection (opaque)', server: 'bare', probe: ({ bare }) => introspectionProbe(bare, OPAQUE_RESOURCE, 'opaque') },
  'client-credentials': { label: 'Postern, client credentials (secret)', server: 'postern', probe: async ({ postern }) => tokenProbe(postern, JWT_RESOURCE) },
  exchange: {
    label: 'Postern, token exchange (JWT subject)', server: 'postern',
    probe: ({ postern, credentials }) => exchangeProbe(postern, { ...postern, ...credentials.exchanger }, JWT_RESOURCE, EXCHANGE_TARGET),
  },
  federated: {
    label: 'Postern, federated client credentials', server: 'postern',
    probe: async ({ postern, federated }) => federatedProbe(postern.url, federated, REQUESTS + 3000),
  },
};
const chosen = (process.env.CPU_SCENARIOS || 'bare-introspect,decision,introspect-jwt,introspect-opaque').split(',').map((name) => name.trim());
for (const name of chosen) if (!SCENARIOS[name]) throw new Error(`CPU_SCENARIOS: unknown ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`);

/** The Postgres backends serving the benchmark's database now. */
async function backends(world: World): Promise<number[]> {
  const client = new pg.Client({ connectionString: world.baseUrl });
  await client.connect();
  try {
    const rows = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [world.databaseName]);
    return rows.rows.map((row) => row.pid);
  } finally {
    await client.end();
  }
}

interface Cost { server: number; mainThread: number; database: number }

async function cpuPerRequest(world: World, pid: number, probe: Probe): Promise<Cost> {
  await check(probe, probe.url);
  const run = (amount: number) => autocannon({
    url: probe.url, method: probe.method ?? 'POST', headers: probe.headers,
    body: probe.method === 'GET' ? undefined : probe.body, connections: 32, amount, verifyBody: probe.ok,
    ...(probe.fresh ? { requests: freshRequests(probe) } : {}),
  });
  await run(2000); // warm-up
  const pids = await backends(world);
  const before = cpuOf(pid);
  const mainBefore = cpuOf(pid, pid);
  const databaseBefore = new Map(pids.map((backend) => [backend, cpuOf(backend)]));
  const result = await run(REQUESTS);
  const server = cpuOf(pid) - before;
  const mainThread = cpuOf(pid, pid) - mainBefore;
  // Backends opened during the run count from zero.
  const after = await backends(world);
  const database = after.reduce((sum, backend) => sum + cpuOf(backend) - (databaseBefore.get(backend) ?? 0), 0);
  if (result.non2xx || result.errors || result.mismatches) throw new Error(`${probe.url}: failed requests`);
  return { server: server / REQUESTS, mainThread: mainThread / REQUESTS, database: database / REQUESTS };
}

const baseUrl = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const database = await createBenchDatabase(baseUrl);
const children: Child[] = [];
let federated: FederatedWorld | undefined;
try {
  const credentials = await register(database.url);
  federated = await registerFederated(database.url, credentials.role);
  await registerGateRoute(database.url);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const postern = new Child('Postern', 'src/main.ts', {
    NODE_ENV: 'development', POSTERN_MASTER_KEY: randomBytes(32).toString('base64'), DATABASE_URL: database.url, LOG_LEVEL: 'warn',
    RATE_LIMIT_CLIENT: '10000000', RATE_LIMIT_ADDRESS: '10000000', RATE_LIMIT_INVALID_CLIENT: '0', WORKERS: '1', PORT: String(port), ISSUER: url,
  }, process.env.CPU_ROOT ? path.resolve(process.env.CPU_ROOT) : ROOT);
  children.push(postern);
  await postern.waitUntilReady(`${url}/healthz`);
  const bareCredentials = { clientId: 'bench-baseline', clientSecret: randomBytes(32).toString('base64url') };
  const barePort = await freePort();
  const bare = new Child('bare', 'bench/bare-provider.ts', {
    PORT: String(barePort), BENCH_CLIENT_ID: bareCredentials.clientId, BENCH_CLIENT_SECRET: bareCredentials.clientSecret,
  }, ROOT);
  children.push(bare);
  await bare.waitUntilReady(`http://127.0.0.1:${barePort}/.well-known/openid-configuration`);
  const world: World = {
    postern: { label: 'Postern', url, ...credentials },
    bare: { label: 'bare', url: `http://127.0.0.1:${barePort}`, ...bareCredentials },
    credentials, federated, posternPid: postern.pid!, barePid: bare.pid!, databaseName: database.name, baseUrl,
  };
  const rows: [string, Cost][] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const name of chosen) {
      const scenario = SCENARIOS[name]!;
      const pid = scenario.server === 'postern' ? world.posternPid : world.barePid;
      rows.push([scenario.label, await cpuPerRequest(world, pid, await scenario.probe(world))]);
    }
  }
  const median = (label: string, which: keyof Cost) => {
    const values = rows.filter(([name]) => name === label).map(([, value]) => value[which]).sort((a, b) => a - b);
    return values[Math.floor(values.length / 2)]!;
  };
  const labels = chosen.map((name) => SCENARIOS[name]!.label);
  const first = labels[0]!;
  const baseCost = median(first, 'server');
  const baseMain = median(first, 'mainThread');
  console.log(`CPU per request (median of ${ROUNDS} rounds of ${REQUESTS} requests, 32 connections; ratios to the first row):`);
  for (const label of labels) {
    const cost = median(label, 'server');
    const main = median(label, 'mainThread');
    const db = median(label, 'database');
    console.log(`  ${label.padEnd(44)} ${cost.toFixed(0).padStart(5)} us  (${(1e6 / cost).toFixed(0)} req/s per core; ${(baseCost / cost).toFixed(2)}x);  `
      + `main thread ${main.toFixed(0)} us (${(baseMain / main).toFixed(2)}x);  Postgres backends ${db.toFixed(0)} us`);
  }
} finally {
  for (const child of children) await child.stop();
  await federated?.close();
  await database.drop();
}
