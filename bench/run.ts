// `npm run bench`: Postern (a child process on a fresh Postgres database) against bare
// oidc-provider (bench/bare-provider.ts), same requests, same load, one run; then Postern with
// WORKERS=1 against WORKERS=2 (bench/cluster.ts).
//   BENCH_DATABASE_URL  Postgres server to create the throw-away database on
//   BENCH_DURATION      seconds measured per scenario and server (default 10)
//   BENCH_WARMUP        seconds of unreported load before each measurement (default 2)
//   BENCH_ROUNDS        measurements per server and scenario, alternating servers (default 3)
//   BENCH_SCENARIOS     comma-separated parts to run (default all; names in PARTS below)
//   BENCH_ROOT          the checkout whose src/main.ts is measured (default this one; to compare)
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createBenchDatabase, register } from './bench-db.ts';
import { memoryOf, renderClusterReport, type ClusterResult } from './cluster.ts';
import { Child, freePort } from './children.ts';
import {
  check, exchangeProbe, introspectionProbe, issueToken, measure, tokenProbe, type Measurement, type Probe, type Server,
} from './load.ts';
import { failedRequests, machine, renderReport, type ScenarioResult } from './report.ts';
import { ACCESS_TOKEN_TTL, EXCHANGE_TARGET, JWT_RESOURCE, OPAQUE_RESOURCE } from './resources.ts';
import { renderTargets, residentMiB, timeCli } from './targets.ts';
import { federatedProbe, registerFederated } from './federated.ts';
import {
  decisionProbe, gatewaySite, hasNginx, plainSite, registerGateRoute, renderGatewayReport, startNginx, throughProbe,
} from './gateway.ts';
import { argon2Cost, measureLogins, measureRefresh, registerSignIn, renderSignIn, type SignInMeasurement } from './sign-in.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const CONNECTIONS = 32;

/** What BENCH_SCENARIOS may name: each part of the run, in the order they run. */
const PARTS = [
  'client-credentials', 'introspect-jwt', 'gateway-decision', 'introspect-opaque', 'exchange', 'federated',
  'gateway', 'sign-in', 'workers', 'cli',
] as const;
type Part = (typeof PARTS)[number];

function readParts(): Set<Part> {
  const raw = process.env.BENCH_SCENARIOS;
  if (raw === undefined || raw.trim() === '') return new Set(PARTS);
  const names = raw.split(',').map((name) => name.trim()).filter(Boolean);
  const unknown = names.filter((name) => !(PARTS as readonly string[]).includes(name));
  if (unknown.length) throw new Error(`BENCH_SCENARIOS: unknown ${unknown.join(', ')}; known: ${PARTS.join(', ')}`);
  return new Set(names as Part[]);
}

function seconds(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number of seconds, got "${raw}"`);
  return value;
}

function readSettings() {
  const settings = {
    baseUrl: process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres',
    duration: seconds('BENCH_DURATION', 5),
    warmup: seconds('BENCH_WARMUP', 2),
    rounds: Math.max(1, Math.round(seconds('BENCH_ROUNDS', 3))),
    parts: readParts(),
  };
  // Each measurement replays one token, issued just before it: it must outlive warm-up plus run.
  if (settings.duration + settings.warmup > ACCESS_TOKEN_TTL - 30) {
    throw new Error(`BENCH_DURATION + BENCH_WARMUP must stay under ${ACCESS_TOKEN_TTL - 30} s (the tokens' lifetime)`);
  }
  return settings;
}
type Settings = ReturnType<typeof readSettings>;

// Undone in reverse order, once, on success, failure or a signal: servers first, then the database.
const undo: { what: string; run: () => Promise<void> }[] = [];
let cleaning: Promise<void> | undefined;
let interrupted = false;
const load = new AbortController();
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    load.abort();
    for (const step of undo.reverse()) {
      await step.run().catch((error: unknown) => console.error(`cleanup: ${step.what}: ${(error as Error).message}`));
    }
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`\n${signal}: stopping the servers and dropping the database`);
    void cleanUp().finally(() => process.exit(130));
  });
}

async function startServer(name: string, script: string, env: Record<string, string>, readyPath: string): Promise<Child> {
  // Postern from BENCH_ROOT when given; the bare provider and the API behind nginx from here.
  const root = script === 'src/main.ts' && process.env.BENCH_ROOT ? path.resolve(process.env.BENCH_ROOT) : ROOT;
  const child = new Child(name, script, env, root);
  undo.push({ what: `stop ${name}`, run: () => child.stop() });
  await child.waitUntilReady(`http://127.0.0.1:${env.PORT}${readyPath}`);
  return child;
}

interface Scenario {
  part: Part;
  name: string;
  target?: ScenarioResult['target'];
  bareLabel: string;
  /** Builds the request for one server; throws unless it succeeds once. */
  postern(server: Server): Promise<Probe>;
  bare(server: Server): Promise<Probe>;
}

const clientCredentials = async (server: Server) => {
  await issueToken(server, JWT_RESOURCE, 'jwt');
  return tokenProbe(server, JWT_RESOURCE);
};

const SCENARIOS: Scenario[] = [
  {
    part: 'client-credentials',
    name: 'client credentials, JWT ES256',
    target: { min: 1.2, text: '>= 1.2x bare' },
    bareLabel: 'bare oidc-provider',
    postern: clientCredentials,
    bare: clientCredentials,
  },
  {
    // Bare oidc-provider cannot introspect JWTs at all; its opaque introspection (one in-memory
    // lookup) is the bar Postern's signature check must clear.
    part: 'introspect-jwt',
    name: 'introspection, JWT token',
    target: { min: 1.5, text: '>= 1.5x bare opaque introspection' },
    bareLabel: 'bare, OPAQUE token',
    postern: (server) => introspectionProbe(server, JWT_RESOURCE, 'jwt'),
    bare: (server) => introspectionProbe(server, OPAQUE_RESOURCE, 'opaque'),
  },
  {
    // The decision endpoint (docs/gateways.md): a JWT checked against a route rule, the answer a
    // gateway waits for before each request. The bar is the bare provider's opaque introspection.
    part: 'gateway-decision',
    name: 'gateway decision, JWT token',
    target: { min: 1.5, text: '>= 1.5x bare opaque introspection' },
    bareLabel: 'bare, OPAQUE introspection',
    postern: decisionProbe,
    bare: (server) => introspectionProbe(server, OPAQUE_RESOURCE, 'opaque'),
  },
  {
    part: 'introspect-opaque',
    name: 'introspection, opaque token',
    target: { min: 1.0, text: '>= 1.0x bare' },
    bareLabel: 'bare oidc-provider',
    postern: (server) => introspectionProbe(server, OPAQUE_RESOURCE, 'opaque'),
    bare: (server) => introspectionProbe(server, OPAQUE_RESOURCE, 'opaque'),
  },
];

async function measureOn(
  settings: Settings, child: Child, server: Server, build: (server: Server) => Promise<Probe>, what: string,
) {
  const probe = await build(server);
  console.log(`measuring ${what} (${settings.warmup} s warm-up, ${settings.duration} s)`);
  const result = await measure(probe, { connections: CONNECTIONS, duration: settings.duration, warmup: settings.warmup, signal: load.signal });
  if (child.exited) throw child.failure(`stopped while measuring ${what}`);
  // Still answering correctly after the load, not just before it.
  await check(probe, `${what}, after the run`);
  return result;
}

/** The round with the median req/s; failures of every round are kept. */
function median(rounds: Measurement[]): Measurement {
  const sorted = [...rounds].sort((a, b) => a.rps - b.rps);
  const middle = sorted[Math.floor(sorted.length / 2)]!;
  return {
    ...middle,
    non2xx: rounds.reduce((sum, m) => sum + m.non2xx, 0),
    otherFailures: rounds.reduce((sum, m) => sum + m.otherFailures, 0),
  };
}

/**
 * Token exchange (RFC 8693) against client credentials, both on Postern in the same run: an
 * exchange verifies a subject token and checks who may exchange what, then issues a token as
 * client credentials does.
 */
async function measureExchange(
  settings: Settings, postern: Child, url: string, credentials: Awaited<ReturnType<typeof register>>,
): Promise<ScenarioResult> {
  const subject = { label: 'Postern', url, clientId: credentials.clientId, clientSecret: credentials.clientSecret };
  const exchanger = { label: 'Postern', url, ...credentials.exchanger };
  const runs = {
    exchange: () => measureOn(settings, postern, subject, () => exchangeProbe(subject, exchanger, JWT_RESOURCE, EXCHANGE_TARGET), 'token exchange on Postern'),
    clientCredentials: () => measureOn(settings, postern, subject, clientCredentials, 'client credentials on Postern'),
  };
  const measured: Record<keyof typeof runs, Measurement[]> = { exchange: [], clientCredentials: [] };
  for (let round = 0; round < settings.rounds; round += 1) {
    const order = round % 2 === 0 ? (['exchange', 'clientCredentials'] as const) : (['clientCredentials', 'exchange'] as const);
    for (const which of order) measured[which].push(await runs[which]());
  }
  return {
    name: 'token exchange (RFC 8693), JWT ES256',
    target: { min: 0.7, text: '>= 0.7x Postern client credentials' },
    postern: { label: 'Postern', result: median(measured.exchange) },
    bare: { label: 'Postern, client credentials', result: median(measured.clientCredentials) },
  };
}

/** nginx -> Postern -> API against nginx -> API, alternating rounds, with one token. */
async function measureGateway(settings: Settings, postern: Child, server: Server) {
  const upstreamPort = await freePort();
  const upstream = await startServer('API behind the gateway', 'bench/upstream.ts', { PORT: String(upstreamPort) }, '/');
  const api = `127.0.0.1:${upstreamPort}`;
  const checked = await startNginx('gateway', gatewaySite(new URL(server.url).host, api));
  undo.push({ what: 'stop nginx (gateway)', run: checked.stop });
  const plain = await startNginx('plain', plainSite(api));
  undo.push({ what: 'stop nginx (plain)', run: plain.stop });
  const token = await issueToken(server, JWT_RESOURCE, 'jwt');
  const rounds: Record<'checked' | 'plain', Measurement[]> = { checked: [], plain: [] };
  for (let round = 0; round < settings.rounds; round += 1) {
    for (const which of round % 2 === 0 ? (['checked', 'plain'] as const) : (['plain', 'checked'] as const)) {
      const url = which === 'checked' ? checked.url : plain.url;
      const child = which === 'checked' ? postern : upstream;
      rounds[which].push(await measureOn(settings, child, server, () => Promise.resolve(throughProbe(url, token)), `nginx ${which === 'checked' ? 'with' : 'without'} the check`));
    }
  }
  return { checked: median(rounds.checked), plain: median(rounds.plain) };
}

async function main(): Promise<number> {
  const settings = readSettings();
  const database = await createBenchDatabase(settings.baseUrl);
  undo.push({ what: `drop database ${database.name}`, run: database.drop });
  const credentials = await register(database.url);
  const signInWorld = await registerSignIn(database.url, credentials.role);
  const federatedWorld = await registerFederated(database.url, credentials.role);
  undo.push({ what: 'stop the local token issuer', run: federatedWorld.close });
  await registerGateRoute(database.url);
  console.log(`database ${database.name} migrated and registered`);

  const posternPort = await freePort();
  const posternUrl = `http://127.0.0.1:${posternPort}`;
  const posternEnv = {
    NODE_ENV: 'development', // generates its signing keys on first start
    // A throw-away master key: the data folder's development key file stays untouched.
    POSTERN_MASTER_KEY: randomBytes(32).toString('base64'),
    DATABASE_URL: database.url,
    LOG_LEVEL: 'warn',
    // The request limits stay on (counted in memory, the default) but out of the load's reach.
    RATE_LIMIT_CLIENT: '10000000',
    RATE_LIMIT_ADDRESS: '10000000',
    RATE_LIMIT_SIGN_IN_ADDRESS: '0', // the login benchmark posts one form again and again
    RATE_LIMIT_AUTHORIZE_ADDRESS: '0', // and starts each sign-in at /auth
    // A refused request during a run is reported as such; a back-off would turn it into 429s.
    RATE_LIMIT_INVALID_CLIENT: '0',
    WORKERS: '1',
  };
  const postern = await startServer('Postern', 'src/main.ts', { ...posternEnv, PORT: String(posternPort), ISSUER: posternUrl }, '/healthz');

  const { parts } = settings;
  const tableScenarios = SCENARIOS.filter((scenario) => parts.has(scenario.part));
  const bareCredentials = { clientId: 'bench-baseline', clientSecret: randomBytes(32).toString('base64url') };
  const barePort = await freePort();
  const bare = tableScenarios.length === 0 ? undefined : await startServer('bare oidc-provider', 'bench/bare-provider.ts', {
    PORT: String(barePort),
    BENCH_CLIENT_ID: bareCredentials.clientId,
    BENCH_CLIENT_SECRET: bareCredentials.clientSecret,
  }, '/.well-known/openid-configuration');
  console.log(`Postern PID ${postern.pid} at ${posternUrl}${bare ? `, bare oidc-provider PID ${bare.pid} on port ${barePort}` : ''}`);

  const results: ScenarioResult[] = [];
  for (const scenario of tableScenarios) {
    const posternServer = { label: 'Postern', url: posternUrl, ...credentials };
    const bareServer = { label: scenario.bareLabel, url: `http://127.0.0.1:${barePort}`, ...bareCredentials };
    const runs = {
      postern: () => measureOn(settings, postern, posternServer, scenario.postern, `${scenario.name} on Postern`),
      bare: () => measureOn(settings, bare!, bareServer, scenario.bare, `${scenario.name} on ${scenario.bareLabel}`),
    };
    // The machine's speed drifts: alternate the servers (P B, B P, P B, ...) and keep each one's
    // median round, so that neither is always measured in the slower moment.
    const measured: Record<'postern' | 'bare', Measurement[]> = { postern: [], bare: [] };
    for (let round = 0; round < settings.rounds; round += 1) {
      const order = round % 2 === 0 ? (['postern', 'bare'] as const) : (['bare', 'postern'] as const);
      for (const which of order) measured[which].push(await runs[which]());
    }
    results.push({
      name: scenario.name,
      target: scenario.target,
      postern: { label: 'Postern', result: median(measured.postern) },
      bare: { label: scenario.bareLabel, result: median(measured.bare) },
    });
  }

  if (parts.has('exchange')) results.push(await measureExchange(settings, postern, posternUrl, credentials));
  // Memory after the same load on both (Postern's one process, bare's), before sign-in adds more.
  const memory = bare ? { postern: residentMiB(postern.pid), bare: residentMiB(bare.pid) } : undefined;
  // Federated client credentials (a fresh platform token per request) against secret-based ones,
  // both on Postern, alternating.
  let federated: ScenarioResult | undefined;
  let federatedReport = '';
  if (parts.has('federated')) {
    const federatedRounds: Record<'federated' | 'secret', Measurement[]> = { federated: [], secret: [] };
    const posternServer = { label: 'Postern', url: posternUrl, ...credentials };
    // Enough platform tokens signed ahead for warm-up and run at up to 12,000 requests/s: past
    // them, the load generator would sign while Postern is measured.
    const prepared = Math.ceil((settings.warmup + settings.duration) * 12_000);
    for (let round = 0; round < settings.rounds; round += 1) {
      for (const which of round % 2 === 0 ? ['federated', 'secret'] as const : ['secret', 'federated'] as const) {
        federatedRounds[which].push(which === 'federated'
          ? await measureOn(settings, postern, posternServer, async () => federatedProbe(posternUrl, federatedWorld, prepared), 'federated client credentials on Postern')
          : await measureOn(settings, postern, posternServer, clientCredentials, 'client credentials (secret) on Postern'));
      }
    }
    federated = {
      name: 'client credentials, federated (platform token)',
      target: { min: 0.6, text: '>= 0.6x client secret' },
      postern: { label: 'Postern, platform token', result: median(federatedRounds.federated) },
      bare: { label: 'Postern, client secret', result: median(federatedRounds.secret) },
    };
    federatedReport = renderReport([federated]).replace('Postern/bare', 'platform token/client secret');
    console.log(`\n${federatedReport}\n`);
  }
  const gateway = parts.has('gateway') && hasNginx
    ? await measureGateway(settings, postern, { label: 'Postern', url: posternUrl, ...credentials })
    : undefined;
  if (parts.has('gateway') && !hasNginx) console.log('nginx is not installed: the gateway throughput is not measured');

  const signIn: [string, SignInMeasurement][] = [];
  if (parts.has('sign-in')) {
    for (const [name, run] of [
      ['password login (POST login form)', measureLogins],
      ['refresh-token grant, JWT ES256', measureRefresh],
    ] as const) {
      console.log(`measuring ${name} on Postern (${settings.duration} s)`);
      signIn.push([name, await run(posternUrl, signInWorld, { connections: CONNECTIONS, duration: settings.duration })]);
      if (postern.exited) throw postern.failure(`stopped while measuring ${name}`);
    }
  }
  const cost = parts.has('sign-in') ? await argon2Cost() : undefined;
  let clusterResults: ClusterResult[] = [];
  if (parts.has('workers')) {
    // The same Postern as a cluster of two workers (the database and its keys are ready).
    const clusterPort = await freePort();
    const clusterUrl = `http://127.0.0.1:${clusterPort}`;
    const cluster = await startServer('Postern WORKERS=2', 'src/main.ts', {
      ...posternEnv, WORKERS: '2', PORT: String(clusterPort), ISSUER: clusterUrl,
    }, '/healthz');
    // /healthz answers once one worker listens; give the second one time to start too.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const byWorkers: Record<1 | 2, { child: typeof postern; server: Server; rounds: Measurement[] }> = {
      1: { child: postern, server: { label: 'Postern WORKERS=1', url: posternUrl, ...credentials }, rounds: [] },
      2: { child: cluster, server: { label: 'Postern WORKERS=2', url: clusterUrl, ...credentials }, rounds: [] },
    };
    for (let round = 0; round < settings.rounds; round += 1) {
      for (const workers of round % 2 === 0 ? [1, 2] as const : [2, 1] as const) {
        const { child, server, rounds } = byWorkers[workers];
        rounds.push(await measureOn(settings, child, server, clientCredentials, `client credentials on ${server.label}`));
      }
    }
    clusterResults = ([1, 2] as const).map((workers) => ({
      workers,
      result: median(byWorkers[workers].rounds),
      ...memoryOf(byWorkers[workers].child.pid!, workers),
    }));
  }

  // A CLI command on the same Postgres database, as an operator would run it.
  const cliCommand = 'postern clients list';
  let cli: Awaited<ReturnType<typeof timeCli>> | undefined;
  if (parts.has('cli')) {
    console.log(`timing \`${cliCommand}\``);
    cli = await timeCli(ROOT, ['clients', 'list'], { DATABASE_URL: database.url, POSTERN_MASTER_KEY: posternEnv.POSTERN_MASTER_KEY });
  }

  const providerPackage = readFileSync(path.join(ROOT, 'node_modules/oidc-provider/package.json'), 'utf8');
  const providerVersion = (JSON.parse(providerPackage) as { version: string }).version;
  if (results.length) console.log(`\n${renderReport(results)}\n`);
  if (federated) console.log(`${federatedReport}\n`);
  if (gateway) {
    const decisions = results.find((result) => result.name.startsWith('gateway decision'))?.postern.result;
    console.log(`${renderGatewayReport(gateway.checked, gateway.plain, decisions)}\n`);
  }
  if (cost) console.log(`${renderSignIn(signIn, cost)}\n`);
  if (clusterResults.length) console.log(`${renderClusterReport(clusterResults)}\n`);
  const targets = renderTargets({
    clientCredentials: results.find((result) => result.name === SCENARIOS[0]!.name)?.postern.result,
    memory,
    workers: clusterResults.length ? { one: clusterResults[0]!.result, two: clusterResults[1]!.result } : undefined,
    cli: cli ? { ...cli, command: cliCommand } : undefined,
  });
  if (targets) console.log(`${targets}\n`);
  console.log(`machine: ${machine()}`);
  console.log(`load: autocannon, ${CONNECTIONS} connections, ${settings.rounds} alternating rounds per server of `
    + `${settings.warmup} s warm-up + ${settings.duration} s (median round shown), load generator on the same machine; `
    + `oidc-provider ${providerVersion}${parts.size < PARTS.length ? `; BENCH_SCENARIOS=${[...parts].join(',')}` : ''}`);
  // Targets may be missed (that is a result); failed requests make the numbers meaningless.
  const clusterFailures = clusterResults.some((r) => r.result.non2xx + r.result.otherFailures > 0);
  return [...results, ...(federated ? [federated] : [])].some((s) => failedRequests(s) > 0) || signIn.some(([, m]) => m.failed > 0) || clusterFailures ? 1 : 0;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  // After a signal, errors from the servers going away are expected and not worth printing.
  if (!interrupted) console.error(`bench failed: ${(error as Error).message}`);
} finally {
  await cleanUp();
}
process.exit(interrupted ? 130 : exitCode);
