// What the console's overview shows: how much there is, what the audit log counted per minute,
// the signing keys' ages and the next rotation, and what needs attention.
import type { Db } from '../db/tables.ts';
import * as overview from '../store/console-overview.ts';
import { listKeys, type KeyView } from './key-rotation.ts';

const DAY_MS = 86_400_000;
export const SERIES_TYPES = ['token.issued', 'token.failure', 'login.failure', 'login.lockout'] as const;

export interface OverviewSettings {
  /** Hours of per-minute series. */
  hours: number;
  /** A client secret older than this many days is worth a warning. */
  secretMaxAgeDays: number;
  rotationDays: number;
}

export interface Overview {
  counts: Awaited<ReturnType<typeof overview.countRows>>;
  /** Per type: one count per minute, oldest first, `hours * 60` of them. */
  series: Record<(typeof SERIES_TYPES)[number], number[]>;
  seriesStart: string;
  keys: (KeyView & { ageDays: number })[];
  nextRotation: string | null;
  warnings: { kind: 'secret' | 'key' | 'unused'; text: string; link?: string }[];
}

/** When the schedule rotates next: the newest key's activation plus the rotation period. */
export function nextRotation(keys: { activatesAt: string }[], rotationDays: number): string | null {
  if (rotationDays <= 0 || keys.length === 0) return null;
  const newest = Math.max(...keys.map((key) => Date.parse(key.activatesAt)));
  return new Date(newest + rotationDays * DAY_MS).toISOString();
}

export async function describeOverview(db: Db, settings: OverviewSettings, now = Date.now()): Promise<Overview> {
  const minutes = settings.hours * 60;
  const start = Math.floor(now / 60_000) * 60_000 - (minutes - 1) * 60_000;
  // One connection, one query after the other: computed at most every 20 s per process, the
  // figures are not worth five of the pool's connections at once (on a cold pool, four new
  // backends to start, each warming its own catalog caches, while token requests need the pool).
  const [counts, perMinute, keys, stale, unused] = await db.connection().execute(async (conn) => [
    await overview.countRows(conn),
    await overview.countEventsPerMinute(conn, SERIES_TYPES, new Date(start)),
    await listKeys(conn, now),
    await overview.findStaleSecrets(conn, new Date(now - settings.secretMaxAgeDays * DAY_MS), 5),
    await overview.findUnusedClients(conn, new Date(now - DAY_MS), 5),
  ] as const);
  const series = Object.fromEntries(SERIES_TYPES.map((type) => [type, new Array<number>(minutes).fill(0)])) as Overview['series'];
  for (const row of perMinute) {
    const index = Math.floor((row.minute.getTime() - start) / 60_000);
    if (index >= 0 && index < minutes) series[row.type as (typeof SERIES_TYPES)[number]][index]! += row.count;
  }
  const live = keys.filter((key) => key.state !== 'retired');
  const next = nextRotation(live, settings.rotationDays);
  const warnings: Overview['warnings'] = [];
  for (const item of stale.items) {
    warnings.push({ kind: 'secret', text: `${item.name}: secret older than ${settings.secretMaxAgeDays} days (since ${item.since.toISOString().slice(0, 10)})`, link: `/clients/${encodeURIComponent(item.clientId)}` });
  }
  if (stale.total > stale.items.length) warnings.push({ kind: 'secret', text: `and ${stale.total - stale.items.length} more clients with old secrets` });
  if (next && Date.parse(next) < now) warnings.push({ kind: 'key', text: `Signing-key rotation was due on ${next.slice(0, 10)}`, link: '/keys' });
  for (const item of unused.items) {
    warnings.push({ kind: 'unused', text: `${item.name}: no token issued in the audit log`, link: `/clients/${encodeURIComponent(item.clientId)}` });
  }
  if (unused.total > unused.items.length) warnings.push({ kind: 'unused', text: `and ${unused.total - unused.items.length} more clients never used` });
  return {
    counts, series, seriesStart: new Date(start).toISOString(),
    keys: live.map((key) => ({ ...key, ageDays: Math.floor((now - Date.parse(key.createdAt)) / DAY_MS) })),
    nextRotation: next, warnings,
  };
}
