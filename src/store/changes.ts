// Publishes a change to every process sharing the database (LISTEN/NOTIFY, delivered at commit).
import { sql } from 'kysely';
import { CHANGES_CHANNEL } from '../db/change-feed.ts';
import type { Db } from './types.ts';

export type Change =
  | { kind: 'client'; clientId: string }
  | { kind: 'config' }
  | { kind: 'revoked'; jti: string; exp: number }
  /** A marker: once a process receives it, it has received every change committed before it. */
  | { kind: 'sync'; id: string };

export async function publishChange(db: Db, change: Change): Promise<void> {
  await sql`select pg_notify(${CHANGES_CHANNEL}, ${JSON.stringify(change)})`.execute(db);
}

export function parseChange(payload: string): Change | undefined {
  try {
    const value = JSON.parse(payload) as Change;
    return typeof value === 'object' && value && typeof value.kind === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}
