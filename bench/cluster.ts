// The cluster part of `npm run bench`: client credentials on Postern with WORKERS=1 and with
// WORKERS=2 (same database, same load, alternating rounds), the ratio, and the memory (RSS) of
// each serving process at the end of the run.
import fs from 'node:fs';
import type { Measurement } from './load.ts';

export interface ClusterResult {
  workers: number;
  result: Measurement;
  /** RSS in MiB of each serving process (the workers; with WORKERS=1, the process itself). */
  rssMiB: number[];
  primaryRssMiB: number | undefined;
}

function rssMiB(pid: number): number | undefined {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Math.round(Number(match[1]) / 1024) : undefined;
  } catch {
    return undefined; // not Linux, or gone
  }
}

/** PIDs whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (after the parenthesised command name) is the parent PID.
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === pid) found.push(Number(entry));
    } catch {}
  }
  return found;
}

/** Memory of a Postern started with `workers`: its workers' RSS, and the primary's. */
export function memoryOf(pid: number, workers: number): { rssMiB: number[]; primaryRssMiB: number | undefined } {
  if (!fs.existsSync('/proc/self/status')) return { rssMiB: [], primaryRssMiB: undefined };
  if (workers === 1) return { rssMiB: [rssMiB(pid)].filter((v): v is number => v !== undefined), primaryRssMiB: undefined };
  const rss = childrenOf(pid).map(rssMiB).filter((v): v is number => v !== undefined);
  return { rssMiB: rss, primaryRssMiB: rssMiB(pid) };
}

export function renderClusterReport(results: ClusterResult[]): string {
  const lines = ['Client credentials, JWT ES256, by number of workers (one Postern, WORKERS=N):'];
  for (const r of results) {
    const memory = r.rssMiB.length ? `RSS per worker ${r.rssMiB.join(', ')} MiB` : 'RSS n/a';
    const primary = r.primaryRssMiB !== undefined ? ` (primary ${r.primaryRssMiB} MiB)` : '';
    lines.push(`  WORKERS=${r.workers}: ${r.result.rps.toFixed(0)} req/s, p50 ${r.result.p50.toFixed(0)} ms, `
      + `p99 ${r.result.p99.toFixed(0)} ms, non-2xx ${r.result.non2xx}, other failures ${r.result.otherFailures}; ${memory}${primary}`);
  }
  const [one, two] = results;
  if (one && two) lines.push(`  WORKERS=${two.workers} / WORKERS=${one.workers} = ${(two.result.rps / one.result.rps).toFixed(2)}x`);
  return lines.join('\n');
}
