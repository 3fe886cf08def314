// `npm run bench:capacity`: what one Postern process costs per request, for sizing. It starts
// Postern (WORKERS=1, a child process, on a fresh Postgres database), loads it with each
// scenario, and reads the process's own CPU time (/proc/<pid>/stat, user + system, all its
// threads: argon2 included) before and after: CPU milliseconds per request, and so requests per
// second per fully used core, whatever else runs on the machine. Also its memory (RSS, sampled;
// the peak from VmHWM) and its database connections (pg_stat_activity) under load. Linux only.
//   BENCH_DATABASE_URL  Postgres server to create the throw-away database on
//   BENCH_DURATION      seconds measured per scenario (default 10), after BENCH_WARMUP (default 3)
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { createBenchDatabase, register } from './bench-db.ts';
import { Child, freePort } from './children.ts';
import { introspectionProbe, issueToken, tokenProbe, type Probe, type Server } from './load.ts';
import { JWT_RESOURCE, OPAQUE_RESOURCE } from './resources.ts';
import { measureLogins, refreshTokens, registerSignIn, replayRefresh } from './sign-in.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const CONNECTIONS = 16;
/** /proc reports CPU time in USER_HZ ticks, 100 a second on Linux. */
const TICKS_PER_SECOND = 100;

function cpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of the line (utime, stime), counted from after the command name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

function memoryMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(match![1]) / 1024);
}

interface Row { name: string; requests: number; seconds: number; cpuMs: number; rssMiB: number; connections: number }

async function main(): Promise<void> {
  const base = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const duration = Number(process.env.BENCH_DURATION || 10);
  const warmup = Number(process.env.BENCH_WARMUP || 3);
  const bench = await createBenchDatabase(base);
  const credentials = await register(bench.url);
  const world = await registerSignIn(bench.url, credentials.role);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = new Child('Postern', 'src/main.ts', {
    NODE_ENV: 'development', POSTERN_MASTER_KEY: randomBytes(32).toString('base64'), DATABASE_URL: bench.url, PORT: String(port),
    ISSUER: url, LOG_LEVEL: 'warn', WORKERS: '1', RATE_LIMIT_CLIENT: '10000000', RATE_LIMIT_ADDRESS: '10000000', RATE_LIMIT_SIGN_IN_ADDRESS: '0',
  }, ROOT);
  const monitor = new pg.Client({ connectionString: base });
  await monitor.connect();
  const rows: Row[] = [];
  let idleRss = 0;
  try {
    await child.waitUntilReady(`${url}/readyz`, 60_000);
    const pid = child.pid!;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    idleRss = memoryMiB(pid, 'VmRSS');
    const server: Server = { label: 'Postern', url, ...credentials };
    const connections = async () => Number((await monitor.query('select count(*) from pg_stat_activity where datname = $1', [bench.name])).rows[0].count);

    /** Runs `load` (which reports the successful requests) and measures the server meanwhile. */
    const measure = async (name: string, load: () => Promise<number>) => {
      let peak = 0;
      let peakConnections = 0;
      const sampler = setInterval(() => {
        peak = Math.max(peak, memoryMiB(pid, 'VmRSS'));
        void connections().then((count) => { peakConnections = Math.max(peakConnections, count); }, () => {});
      }, 250);
      const cpuBefore = cpuMs(pid);
      const started = performance.now();
      const requests = await load();
      const seconds = (performance.now() - started) / 1000;
      const cpu = cpuMs(pid) - cpuBefore;
      clearInterval(sampler);
      rows.push({ name, requests, seconds, cpuMs: cpu / requests, rssMiB: peak, connections: peakConnections });
      process.stderr.write(`measured ${name}\n`);
    };
    const replay = async (probe: Probe, seconds: number) => {
      const result = await autocannon({
        url: probe.url, method: 'POST', headers: probe.headers, body: probe.body, connections: CONNECTIONS, duration: seconds, verifyBody: probe.ok,
      });
      const failed = result.non2xx + result.errors + result.timeouts + Math.max(0, result.mismatches - result.non2xx);
      if (failed) throw new Error(`${failed} failed requests`);
      return result.requests.total;
    };
    const scenarios: [string, () => Promise<Probe>][] = [
      ['client credentials, JWT ES256', async () => { await issueToken(server, JWT_RESOURCE, 'jwt'); return tokenProbe(server, JWT_RESOURCE); }],
      ['client credentials, opaque token', async () => { await issueToken(server, OPAQUE_RESOURCE, 'opaque'); return tokenProbe(server, OPAQUE_RESOURCE); }],
      ['introspection, JWT', () => introspectionProbe(server, JWT_RESOURCE, 'jwt')],
      ['introspection, opaque token', () => introspectionProbe(server, OPAQUE_RESOURCE, 'opaque')],
    ];
    for (const [name, build] of scenarios) {
      const probe = await build();
      await replay(probe, warmup);
      await measure(name, () => replay(probe, duration));
    }
    // A pool for each run: the tokens in flight when a run ends are spent, their answers unread.
    await replayRefresh(url, world, await refreshTokens(url, world, CONNECTIONS), { connections: CONNECTIONS, duration: warmup });
    const pool = await refreshTokens(url, world, CONNECTIONS);
    await measure('refresh-token grant, JWT ES256', async () => {
      const result = await replayRefresh(url, world, pool, { connections: CONNECTIONS, duration });
      if (result.failed > CONNECTIONS) throw new Error(`refresh: ${result.statusCodes}`);
      return result.ok;
    });
    await measure('password login (POST login form, argon2id)', async () => (await measureLogins(url, world, { connections: 4, duration })).ok);
    rows.push({ name: 'after all of the above (VmHWM: the peak)', requests: 0, seconds: 0, cpuMs: 0, rssMiB: memoryMiB(pid, 'VmHWM'), connections: await connections() });
  } finally {
    await child.stop();
    await monitor.end();
    await bench.drop();
  }

  const width = Math.max(...rows.map((row) => row.name.length));
  console.log(`${'scenario'.padEnd(width)}  ${['req/s', 'CPU ms/req', 'req/s/core', 'RSS MiB', 'DB conns'].map((h) => h.padStart(10)).join(' ')}`);
  for (const row of rows) {
    const cells = row.requests
      ? [(row.requests / row.seconds).toFixed(0), row.cpuMs.toFixed(3), (1000 / row.cpuMs).toFixed(0), String(row.rssMiB), String(row.connections)]
      : ['', '', '', String(row.rssMiB), String(row.connections)];
    console.log(`${row.name.padEnd(width)}  ${cells.map((cell) => cell.padStart(10)).join(' ')}`);
  }
  console.log(`\nidle RSS after start: ${idleRss} MiB; load: autocannon, ${CONNECTIONS} connections (logins: 4), ${warmup} s warm-up + ${duration} s; `
    + `CPU: the server process's user + system time; req/s/core = 1000 / CPU ms per request; RSS: highest sample during the scenario.`);
  console.log(`load average at the end: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
}

await main();
