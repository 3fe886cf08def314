// Cursor paging of lists (keyset: "after the last one shown", no offsets): a page's size, and
// cursors that callers treat as opaque. A cursor holds the sort key of a page's last row,
// encoded; a cursor this server did not return is refused as invalid input.
import { invalid } from './errors.ts';

export interface Page<T> { items: T[]; nextCursor: string | null }

/** 1 to `max`; `fallback` when not given. */
export function pageLimit(limit: number | undefined, fallback = 50, max = 200): number {
  const value = limit ?? fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) throw invalid(`limit must be between 1 and ${max}`, 'limit');
  return value;
}

/** A single-string sort key (a name, a username) as a cursor. */
export const encodeCursor = (key: string): string => Buffer.from(key, 'utf8').toString('base64url');

export function decodeCursor(cursor: string): string {
  const key = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!cursor || encodeCursor(key) !== cursor) throw invalid('cursor is not one this server returned', 'cursor');
  return key;
}

/** A sort key of several strings (a null where a column is null) as a cursor. */
export const encodeTupleCursor = (key: readonly (string | null)[]): string => encodeCursor(JSON.stringify(key));

/** The key of a tuple cursor, checked to be `size` strings or nulls. */
export function decodeTupleCursor(cursor: string, size: number): (string | null)[] {
  let key: unknown;
  try {
    key = JSON.parse(decodeCursor(cursor));
  } catch {
    throw invalid('cursor is not one this server returned', 'cursor');
  }
  if (!Array.isArray(key) || key.length !== size || !key.every((part) => part === null || typeof part === 'string')) {
    throw invalid('cursor is not one this server returned', 'cursor');
  }
  return key as (string | null)[];
}
