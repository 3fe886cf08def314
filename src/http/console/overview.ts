// The console's first page: counts, per-minute charts from the audit log's counts (drawn on the
// server as SVG: no script, no external asset), signing keys, warnings.
import { describeOverview, SERIES_TYPES, type Overview } from '../../services/console-overview.ts';
import { render, type ConsoleDeps, type ConsolePages } from './kit.ts';

const HOURS = 3;
const SECRET_MAX_AGE_DAYS = 90;

const LABELS: Record<(typeof SERIES_TYPES)[number], string> = {
  'token.issued': 'Tokens issued',
  'token.failure': 'Token requests refused',
  'login.failure': 'Failed sign-ins',
  'login.lockout': 'Lockouts',
};

/** Bars of a series, scaled to its own maximum, as SVG rectangles. */
export function chartOf(values: number[]): { bars: { x: number; y: number; height: number }[]; max: number; total: number; width: number; height: number } {
  const height = 60;
  const max = Math.max(0, ...values);
  const bars = values.map((value, index) => {
    const h = max ? Math.max(value ? 1 : 0, Math.round((value / max) * height)) : 0;
    return { x: index * 3, y: height - h, height: h };
  }).filter((bar) => bar.height > 0);
  return { bars, max, total: values.reduce((a, b) => a + b, 0), width: values.length * 3, height };
}

/** The charts count whole minutes: one overview per process is reused for this long. */
const REUSE_MS = 20_000;

export function registerOverview(pages: ConsolePages, deps: ConsoleDeps): void {
  // One entry, keyed by nothing a caller chooses: the same for every administrator.
  let cached: { at: number; overview: Promise<Overview> } | undefined;
  const current = () => {
    if (!cached || Date.now() - cached.at > REUSE_MS) {
      const overview = describeOverview(deps.db, { hours: HOURS, secretMaxAgeDays: SECRET_MAX_AGE_DAYS, rotationDays: deps.keyRotation.rotationDays });
      cached = { at: Date.now(), overview };
      overview.catch(() => { cached = undefined; });
    }
    return cached.overview;
  };
  pages.get('', async (ctx) => {
    const overview = await current();
    const charts = SERIES_TYPES.map((type) => ({ type, label: LABELS[type], ...chartOf(overview.series[type]) }));
    render(ctx, 'overview', { title: 'Overview', section: 'overview', overview, charts, hours: HOURS });
  });
}
