// The results table. Ratios are the point: absolute numbers move 10-20% between runs on a noisy
// machine, while both servers of a scenario are measured back to back in one run.
import os from 'node:os';
import type { Measurement } from './load.ts';

export interface ScenarioResult {
  name: string;
  /** Postern req/s must be at least `min` times the baseline's. */
  target?: { min: number; text: string };
  postern: { label: string; result: Measurement };
  bare: { label: string; result: Measurement };
}

const COLUMNS = ['scenario', 'server', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'other failures'];

function table(rows: string[][]): string {
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  // Text columns left-aligned, numbers right-aligned.
  const line = (row: string[]) => row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

const cells = (scenario: string, label: string, m: Measurement) => [
  scenario, label, m.rps.toFixed(0), m.p50.toFixed(0), m.p99.toFixed(0), String(m.non2xx), String(m.otherFailures),
];

export const ratio = (s: ScenarioResult) => s.postern.result.rps / s.bare.result.rps;

export function failedRequests(s: ScenarioResult): number {
  return [s.postern.result, s.bare.result].reduce((sum, m) => sum + m.non2xx + m.otherFailures, 0);
}

export function renderReport(results: ScenarioResult[]): string {
  const rows = [COLUMNS];
  for (const s of results) {
    rows.push(cells(s.name, s.postern.label, s.postern.result), cells('', s.bare.label, s.bare.result));
  }
  const ratios = results.map((s) => {
    const verdict = s.target ? `  target ${s.target.text}: ${ratio(s) >= s.target.min ? 'met' : 'MISSED'}` : '';
    return `  ${s.name}: Postern/bare = ${ratio(s).toFixed(3)}x${verdict}`;
  });
  const failures = results.flatMap((s) => [s.postern, s.bare])
    .filter(({ result }) => result.non2xx + result.otherFailures > 0)
    .map(({ label, result }) => `  ${label}: ${result.non2xx} non-2xx, ${result.otherFailures} other (status codes: ${result.statusCodes})`);
  return [
    table(rows),
    '',
    'Ratios (req/s):',
    ...ratios,
    ...(failures.length ? ['', 'FAILED REQUESTS DURING MEASUREMENT (these numbers are not valid):', ...failures] : []),
  ].join('\n');
}

export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, `
    + `node ${process.version}, ${os.type()} ${os.release()}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`;
}
