// The targets of `npm run bench` beyond each scenario's req/s ratio (docs/benchmarks.md): the
// latency of client credentials, the memory of a worker after the run against bare
// oidc-provider's, the gain of a second worker, and how long a CLI command takes on Postgres.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Measurement } from './load.ts';

export const TARGETS = {
  clientCredentialsP99Ms: 10,
  memoryRatio: 1.2,
  workersRatio: 1.6,
  cliSeconds: 0.25,
};

/** Resident memory of a process in MiB (Linux /proc), undefined elsewhere. */
export function residentMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Math.round(Number(match[1]) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

/** Wall seconds of one run of `node bin/postern.js <args>`; throws unless it exits 0. */
function timeOnce(root: string, args: string[], env: Record<string, string>): Promise<number> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/postern.js', ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('error', reject);
    child.on('exit', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code === 0) resolve(seconds);
      else reject(new Error(`postern ${args.join(' ')} exited with ${code}: ${stderr.trim().slice(0, 300)}`));
    });
  });
}

/** Median and best wall time of `runs` runs (after one unmeasured run that fills the compile cache). */
export async function timeCli(root: string, args: string[], env: Record<string, string>, runs = 10) {
  await timeOnce(root, args, env);
  const times: number[] = [];
  for (let i = 0; i < runs; i += 1) times.push(await timeOnce(root, args, env));
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)]!, best: times[0]!, runs };
}

export interface TargetInput {
  /** Each part is left out when BENCH_SCENARIOS left out what measures it. */
  clientCredentials?: Measurement;
  memory?: { postern: number | undefined; bare: number | undefined };
  workers?: { one: Measurement; two: Measurement };
  cli?: { median: number; best: number; runs: number; command: string };
}

const verdict = (met: boolean) => (met ? 'met' : 'MISSED');

/** The lines of the targets measured; empty when none was. */
export function renderTargets(input: TargetInput): string {
  const { clientCredentials, memory, workers, cli } = input;
  const lines = ['Other targets:'];
  if (clientCredentials) {
    const p99 = clientCredentials.p99;
    lines.push(`  client credentials p99 at 32 connections: ${p99.toFixed(0)} ms  target <= ${TARGETS.clientCredentialsP99Ms} ms: ${verdict(p99 <= TARGETS.clientCredentialsP99Ms)}`);
  }
  if (memory && memory.postern !== undefined && memory.bare !== undefined) {
    const ratio = memory.postern / memory.bare;
    lines.push(`  resident memory after the run: Postern ${memory.postern} MiB, bare ${memory.bare} MiB, ${ratio.toFixed(2)}x  target <= ${TARGETS.memoryRatio}x: ${verdict(ratio <= TARGETS.memoryRatio)}`);
  } else if (memory) {
    lines.push('  resident memory after the run: n/a (not Linux)');
  }
  if (workers) {
    const gain = workers.two.rps / workers.one.rps;
    lines.push(`  WORKERS=2 / WORKERS=1: ${gain.toFixed(2)}x  target >= ${TARGETS.workersRatio}x: ${verdict(gain >= TARGETS.workersRatio)}`);
  }
  if (cli) {
    lines.push(`  \`${cli.command}\` on Postgres: median ${cli.median.toFixed(3)} s, best ${cli.best.toFixed(3)} s of ${cli.runs} runs  target <= ${TARGETS.cliSeconds} s: ${verdict(cli.median <= TARGETS.cliSeconds)}`);
  }
  return lines.length > 1 ? lines.join('\n') : '';
}
