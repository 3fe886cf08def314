// `npm run bench:profile`: where Postern spends its time under the benchmark's load. Starts one
// Postern (WORKERS=1) under `node --cpu-prof` on a fresh Postgres database, loads one scenario
// after the other, stops it, and prints the profile's top functions by self time, overall and
// by package. The profile itself stays in the folder printed (open it in Chrome's DevTools).
//   BENCH_DATABASE_URL  Postgres server to create the throw-away database on
//   PROFILE_SCENARIOS   comma-separated, of: token, introspect-jwt, introspect-opaque, exchange,
//                       federated, gate (default all)
//   PROFILE_SECONDS     seconds of load per scenario (default 8)
//   PROFILE_ROOT        the checkout whose src/main.ts is profiled (default this one; to compare)
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createBenchDatabase, register, type Credentials } from './bench-db.ts';
import { Child, freePort } from './children.ts';
import { registerFederated, federatedProbe, type FederatedWorld } from './federated.ts';
import { decisionProbe, registerGateRoute } from './gateway.ts';
import { check, exchangeProbe, introspectionProbe, measure, tokenProbe, type Probe, type Server } from './load.ts';
import { EXCHANGE_TARGET, JWT_RESOURCE, OPAQUE_RESOURCE } from './resources.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const seconds = Number(process.env.PROFILE_SECONDS || 8);
interface World { server: Server; credentials: Credentials; federated: FederatedWorld }
const SCENARIOS: Record<string, (world: World) => Promise<Probe>> = {
  token: async ({ server }) => tokenProbe(server, JWT_RESOURCE),
  'introspect-jwt': ({ server }) => introspectionProbe(server, JWT_RESOURCE, 'jwt'),
  'introspect-opaque': ({ server }) => introspectionProbe(server, OPAQUE_RESOURCE, 'opaque'),
  // Token exchange (RFC 8693): the bench client's JWT for the orders API traded for a payments token.
  exchange: ({ server, credentials }) => exchangeProbe(server, { ...server, ...credentials.exchanger }, JWT_RESOURCE, EXCHANGE_TARGET),
  // Federated client credentials: a platform token of its own per request, signed before the run.
  federated: async ({ server, federated }) => federatedProbe(server.url, federated, Math.ceil(seconds * 8000)),
  // The decision endpoint for a JWT (Traefik's and Caddy's question), as bench/gateway.ts asks it.
  gate: ({ server }) => decisionProbe(server),
};
const chosen = (process.env.PROFILE_SCENARIOS || Object.keys(SCENARIOS).join(',')).split(',');

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }

/** Self time by function and by package, as percentages of all samples. */
export function summarize(file: string, top = 10): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[] };
  const total = profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0);
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    const short = url.replace(/^file:\/\//, '').replace(/^.*?\/(src|node_modules)\//, '$1/');
    const name = `${functionName || '(anonymous)'} ${short ? `${short}:${lineNumber + 1}` : ''}`.trim();
    byFunction.set(name, (byFunction.get(name) ?? 0) + hits);
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(short)?.[1]
      ?? (short.startsWith('src/') ? short.split('/').slice(0, 2).join('/') : short.startsWith('node:') ? 'node internals' : short || functionName);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + hits);
  }
  const render = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([name, hits]) => `  ${((hits / total) * 100).toFixed(1).padStart(5)}%  ${name}`).join('\n');
  return `self time, top ${top} functions:\n${render(byFunction)}\nself time by package or folder:\n${render(byPackage)}`;
}

async function main() {
  const database = await createBenchDatabase(process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres');
  const profileDir = mkdtempSync(path.join(os.tmpdir(), 'postern-profile-'));
  let child: Child | undefined;
  let federated: FederatedWorld | undefined;
  try {
    const credentials = await register(database.url);
    federated = await registerFederated(database.url, credentials.role);
    if (chosen.includes('gate')) await registerGateRoute(database.url);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    child = new Child('Postern', 'src/main.ts', {
      NODE_ENV: 'development', POSTERN_MASTER_KEY: randomBytes(32).toString('base64'), DATABASE_URL: database.url,
      LOG_LEVEL: 'warn', RATE_LIMIT_CLIENT: '10000000', RATE_LIMIT_ADDRESS: '10000000', WORKERS: '1',
      // A refused request is counted as such; a back-off would turn what follows into 429s.
      RATE_LIMIT_INVALID_CLIENT: '0',
      PORT: String(port), ISSUER: url, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}`,
    }, process.env.PROFILE_ROOT ? path.resolve(process.env.PROFILE_ROOT) : ROOT);
    await child.waitUntilReady(`${url}/healthz`);
    const server = { label: 'Postern', url, ...credentials };
    for (const name of chosen) {
      const build = SCENARIOS[name];
      if (!build) throw new Error(`PROFILE_SCENARIOS: unknown ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`);
      const probe = await build({ server, credentials, federated });
      await check(probe, name);
      const result = await measure(probe, { connections: 32, duration: seconds, warmup: 1, signal: new AbortController().signal });
      console.log(`${name}: ${Math.round(result.rps)} req/s, p99 ${result.p99} ms, non-2xx ${result.non2xx}${result.non2xx ? ` (${result.statusCodes})` : ''}`);
    }
    await child.stop();
    child = undefined;
    for (const file of readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'))) {
      console.log(`\n${path.join(profileDir, file)}\n${summarize(path.join(profileDir, file))}`);
    }
  } finally {
    await child?.stop();
    await federated?.close();
    await database.drop();
  }
}

await main();
