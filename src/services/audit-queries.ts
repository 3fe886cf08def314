// Reading the audit log (admin API, `postern audit tail`) and pruning it past its retention.
import { AUDIT_EVENT_TYPES, type AuditSink } from '../domain/audit-events.ts';
import type { Db } from '../db/tables.ts';
import * as store from '../store/audit.ts';
import { findClientById, findClientByName } from '../store/clients.ts';
import { invalid } from './errors.ts';

const TYPES = new Set<string>(AUDIT_EVENT_TYPES);

export interface AuditEventView {
  id: string;
  occurredAt: string;
  type: string;
  actor: { type: string; id: string | null };
  target: { type: string; id: string | null } | null;
  clientId: string | null;
  userId: string | null;
  outcome: 'success' | 'failure';
  sourceAddress: string | null;
  requestId: string | null;
  details: Record<string, unknown>;
}

function toView(row: store.AuditEventRow): AuditEventView {
  return {
    id: String(row.id),
    occurredAt: row.occurred_at.toISOString(),
    type: row.type,
    actor: { type: row.actor_type, id: row.actor_id },
    target: row.target_type ? { type: row.target_type, id: row.target_id } : null,
    clientId: row.client_id,
    userId: row.user_id,
    outcome: row.outcome,
    sourceAddress: row.source_address,
    requestId: row.request_id,
    details: row.details,
  };
}

/** "client.*" names every client event; anything else must be a known type. */
export function expandTypes(types: readonly string[] | undefined): string[] | undefined {
  if (!types?.length) return undefined;
  const out = new Set<string>();
  for (const type of types.flatMap((value) => value.split(',')).map((value) => value.trim()).filter(Boolean)) {
    if (type.endsWith('.*')) {
      const matches = AUDIT_EVENT_TYPES.filter((known) => known.startsWith(type.slice(0, -1)));
      if (!matches.length) throw invalid(`no event type starts with "${type.slice(0, -1)}"`, 'type');
      matches.forEach((match) => out.add(match));
    } else if (TYPES.has(type)) {
      out.add(type);
    } else {
      throw invalid(`unknown event type "${type}" (see docs/audit.md)`, 'type');
    }
  }
  return [...out];
}

export interface AuditEventQuery {
  /** 1 to 500; 100 by default. */
  limit?: number;
  cursor?: string;
  since?: Date;
  until?: Date;
  type?: string[];
  /** Actor id (a client id, a user id, an OS user). */
  actor?: string;
  /** Client id or name: events where it is actor or target. */
  client?: string;
  user?: string;
}

export interface AuditEventPage { items: AuditEventView[]; nextCursor: string | null }

const encodeCursor = (id: string) => Buffer.from(`a${id}`, 'utf8').toString('base64url');
function decodeCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^a[1-9][0-9]{0,18}$/.test(text) || encodeCursor(text.slice(1)) !== cursor) {
    throw invalid('cursor is not one this server returned', 'cursor');
  }
  return text.slice(1);
}

async function resolveClient(db: Db, ref: string): Promise<string> {
  // A deleted client's events stay: an unknown ref is taken as a client id.
  return ((await findClientById(db, ref)) ?? (await findClientByName(db, ref)))?.client_id ?? ref;
}

/** A page of events, newest first. */
export async function listAuditEvents(db: Db, query: AuditEventQuery = {}): Promise<AuditEventPage> {
  const limit = query.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw invalid('limit must be between 1 and 500', 'limit');
  if (query.since && query.until && query.since >= query.until) throw invalid('since must be before until', 'since');
  const { rows, more } = await store.listAuditEvents(db, {
    limit,
    order: 'desc',
    beforeId: query.cursor === undefined ? undefined : decodeCursor(query.cursor),
    since: query.since,
    until: query.until,
    types: expandTypes(query.type),
    actorId: query.actor,
    clientId: query.client === undefined ? undefined : await resolveClient(db, query.client),
    userId: query.user,
  });
  return { items: rows.map(toView), nextCursor: more && rows.length ? encodeCursor(String(rows.at(-1)!.id)) : null };
}

/**
 * For `audit tail`: the newest `limit` events in time order, or (with afterId) those written
 * since, oldest first.
 */
export async function tailAuditEvents(
  db: Db,
  query: { limit: number; afterId?: string; type?: string[] },
): Promise<AuditEventView[]> {
  const types = expandTypes(query.type);
  if (query.afterId !== undefined) {
    const { rows } = await store.listAuditEvents(db, { limit: query.limit, order: 'asc', afterId: query.afterId, types });
    return rows.map(toView);
  }
  const { rows } = await store.listAuditEvents(db, { limit: query.limit, order: 'desc', types });
  return rows.reverse().map(toView);
}

/** Deletes events older than the retention, and records that it did. */
export async function pruneAuditEvents(
  db: Db,
  retentionDays: number,
  audit: AuditSink,
  now = new Date(),
): Promise<number> {
  if (retentionDays <= 0) return 0;
  const before = new Date(now.getTime() - retentionDays * 86400_000);
  const deleted = await store.deleteAuditEventsBefore(db, before);
  if (deleted) audit.record({ type: 'audit.pruned', actor: { type: 'system' }, details: { deleted, before } });
  return deleted;
}
