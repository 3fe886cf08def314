// A signing key's state, derived from its timestamps (migration 0006): time alone moves a key from
// next to active to retiring to retired, on every process at once, without a writer.
import type { KeyState } from './signing-keys.ts';

export interface KeyDates {
  activates_at: Date;
  retires_at: Date | null;
  remove_after: Date | null;
}

export function deriveKeyState(row: KeyDates, now: number): KeyState {
  if (now < row.activates_at.getTime()) return 'next';
  if (row.retires_at === null || now < row.retires_at.getTime()) return 'active';
  if (row.remove_after === null || now < row.remove_after.getTime()) return 'retiring';
  return 'retired';
}

/** The first moment after `now` at which the row's state changes, if any (epoch ms). */
export function nextKeyTransition(row: KeyDates, now: number): number | undefined {
  return [row.activates_at, row.retires_at, row.remove_after]
    .map((date) => date?.getTime())
    .find((time): time is number => time !== undefined && time > now);
}
