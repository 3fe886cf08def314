// The audit log: security events recorded off the request path. record() only appends to a bounded
// in-memory buffer (it never throws and never waits); the buffer is written in batches on an
// interval and on close(). Token issuance is only counted, and written as one `token.issued` row
// per client per interval, so that issuing a token adds no database write; refusals that anyone
// can cause at will are counted the same way (aggregationKeys), so that they add none either.
import {
  aggregationKeys, AUDIT_DETAIL_KEYS, AUDIT_EVENT_TYPES, sampledDetails, type Actor, type AuditEventInput, type AuditSink,
} from '../domain/audit-events.ts';
import type { Db } from '../db/tables.ts';
import type { Logger } from '../platform/logger.ts';
import * as store from '../store/audit.ts';
import { detach } from '../domain/text.ts';

const TYPES = new Set<string>(AUDIT_EVENT_TYPES);
const SYSTEM: Actor = { type: 'system' };
const DETAIL_KEYS = new Set<string>(AUDIT_DETAIL_KEYS);
const MAX_STRING = 300;
const MAX_LIST = 50;
/** A value in the key of a count is cut to this length (the values are short words and ids). */
const MAX_KEY_PART = 64;
/** Distinct examples of a sampled detail kept per count (SAMPLED in domain/audit-events.ts). */
const MAX_SAMPLES = 10;

/**
 * Strings that look like credentials are masked even under an allowed key: a JWT, or a long run of
 * base64url characters mixing cases and digits (secrets and opaque tokens are 43 such characters).
 */
function maskCredentials(value: string): string {
  // Shorter than the shortest string either pattern matches (a JWT of three 5-character parts).
  if (value.length < 15) return value;
  return value
    .replace(/eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, '[redacted]')
    .replace(/[A-Za-z0-9_-]{32,}/g, (run) => (/[a-z]/.test(run) && /[A-Z]/.test(run) && /[0-9]/.test(run) ? '[redacted]' : run));
}

function safeScalar(value: unknown): unknown {
  // A copy (detach): counted refusals keep their details for up to a minute.
  if (typeof value === 'string') return detach(maskCredentials(value.slice(0, MAX_STRING)));
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'boolean' || value === null) return value;
  if (value instanceof Date) return value.toISOString();
  return undefined;
}

function safeValue(value: unknown, nested: boolean): unknown {
  if (Array.isArray(value)) return value.slice(0, MAX_LIST).map(safeScalar).filter((item) => item !== undefined);
  if (typeof value === 'object' && value !== null && !(value instanceof Date)) {
    // One level of nesting (e.g. `changes: {name, enabled}`), under the same allow-list.
    return nested ? undefined : safeDetails(value as Record<string, unknown>, true);
  }
  return safeScalar(value);
}

/** Keeps allow-listed keys with plain values only. */
export function safeDetails(details: Record<string, unknown> | undefined, nested = false): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(details ?? {})) {
    if (!DETAIL_KEYS.has(key)) continue;
    const safe = safeValue(value, nested);
    if (safe !== undefined) out[key] = safe;
  }
  return out;
}

// Copies (detach): a value cut from a request must not keep the request alive in the buffer.
const short = (value: string | null | undefined, max = 200) => (value == null ? null : detach(String(value).slice(0, max)));

type Columns = Omit<store.NewAuditEvent, 'details'>;
/** An event as it is stored: who did it is known. */
type RecordedEvent = AuditEventInput & { actor: Actor };

function toColumns(event: RecordedEvent, at: Date): Columns {
  const { actor, target } = event;
  // The client (user) concerned: the target if it is one, else the actor. Filters also match the
  // actor column, so an admin client acting on another client is found under both.
  const clientId = event.clientId
    ?? (target?.type === 'client' ? target.id : undefined)
    ?? (actor.type === 'client' ? actor.id : undefined);
  const userId = event.userId
    ?? (target?.type === 'user' ? target.id : undefined)
    ?? (actor.type === 'user' ? actor.id : undefined);
  return {
    occurred_at: at,
    type: event.type,
    actor_type: actor.type,
    actor_id: short(actor.id),
    target_type: short(target?.type, 50),
    target_id: short(target?.id),
    client_id: short(clientId),
    user_id: short(userId),
    outcome: event.outcome ?? 'success',
    source_address: short(event.sourceAddress, 100),
    request_id: short(event.requestId, 100),
  };
}

function toRow(event: RecordedEvent, at: Date): store.NewAuditEvent {
  return { ...toColumns(event, at), details: JSON.stringify(safeDetails(event.details as Record<string, unknown>)) };
}

/** Refusals of one kind from one source within the interval (the first one's columns). */
interface Aggregate {
  columns: Columns; details: Record<string, unknown>; count: number; firstSeen: Date; lastSeen: Date;
  /** The first few distinct values of each sampled detail (a username, say). */
  samples?: Map<string, Set<unknown>>;
}

const keyPart = (value: unknown) => (typeof value === 'string' ? detach(value.slice(0, MAX_KEY_PART)) : value);

export interface AuditLogOptions {
  logger?: Logger;
  /** How often buffered events are written (ms). */
  flushIntervalMs?: number;
  /** How often counts are written: token issuance per client, refusals per kind and source (ms). */
  countIntervalMs?: number;
  /** Refusal counts kept per interval (100); past it, further kinds fold into one row per type. */
  maxAggregates?: number;
  /** Events held at most; past it the oldest are dropped (and the drop is itself recorded). */
  maxBuffered?: number;
  /** Rows per INSERT. */
  batchSize?: number;
}

export class AuditLog implements AuditSink {
  #db: Db;
  #logger: Logger | undefined;
  #buffer: store.NewAuditEvent[] = [];
  #max: number;
  #batchSize: number;
  #dropped = 0;
  #issued = new Map<string, number>();
  #issuedSince = new Date();
  #aggregates = new Map<string, Aggregate>();
  #maxAggregates: number;
  #timers: NodeJS.Timeout[] = [];
  #flushing: Promise<void> = Promise.resolve();

  constructor(db: Db, options: AuditLogOptions = {}) {
    this.#db = db;
    this.#logger = options.logger;
    this.#max = options.maxBuffered ?? 10_000;
    this.#batchSize = options.batchSize ?? 500;
    const flushEvery = options.flushIntervalMs ?? 1000;
    this.#maxAggregates = options.maxAggregates ?? 100;
    const countEvery = options.countIntervalMs ?? 60_000;
    if (flushEvery > 0) this.#timers.push(setInterval(() => void this.flush(), flushEvery));
    if (countEvery > 0) this.#timers.push(setInterval(() => this.#moveCounts(), countEvery));
    for (const timer of this.#timers) timer.unref();
  }

  record(input: AuditEventInput): void {
    try {
      // An event without an actor, recorded on the log itself (not through auditAs), is the system's.
      const event: RecordedEvent = { ...input, actor: input.actor ?? SYSTEM };
      if (!TYPES.has(event.type)) throw new Error(`unknown audit event type "${event.type}"`);
      const keys = aggregationKeys(event);
      if (keys) this.#count(event, keys, new Date());
      else this.#push(toRow(event, new Date()));
    } catch (error) {
      // Never into the caller: an audit problem must not fail the request it describes.
      this.#logger?.warn({ err: error, type: input?.type }, 'audit event not recorded');
    }
  }

  countTokenIssued(clientId: string): void {
    this.#issued.set(clientId, (this.#issued.get(clientId) ?? 0) + 1);
  }

  /** Events buffered and not yet written (for tests and health). */
  get pending(): number {
    return this.#buffer.length + this.#issued.size + this.#aggregates.size;
  }

  /**
   * One more refusal of its kind. The kinds are bounded: past maxAggregates, a new kind is
   * counted in its type's overflow row (no source, no client) instead of adding a key.
   */
  #count(event: RecordedEvent, keys: readonly string[], at: Date): void {
    const columns = toColumns(event, at);
    const all = safeDetails(event.details as Record<string, unknown>);
    const details = Object.fromEntries(keys.filter((key) => key in all).map((key) => [key, keyPart(all[key])]));
    let key = JSON.stringify([columns.type, columns.source_address, columns.actor_type, columns.actor_id, columns.client_id, columns.user_id, details]);
    let aggregate = this.#aggregates.get(key);
    if (!aggregate && this.#aggregates.size >= this.#maxAggregates) {
      key = JSON.stringify([columns.type]);
      aggregate = this.#aggregates.get(key);
      if (!aggregate) {
        aggregate = {
          columns: { ...columns, actor_type: 'anonymous', actor_id: null, target_type: null, target_id: null, client_id: null, user_id: null, source_address: null },
          details: { overflow: true }, count: 0, firstSeen: at, lastSeen: at,
        };
        // One over the bound per type at most: the overflow rows themselves are bounded.
        this.#aggregates.set(key, aggregate);
      }
    }
    if (!aggregate) {
      // The first of its kind keeps a description (its own words) alongside the key details.
      if (typeof all.errorDescription === 'string') details.errorDescription = all.errorDescription;
      aggregate = { columns, details, count: 0, firstSeen: at, lastSeen: at };
      this.#aggregates.set(key, aggregate);
    }
    aggregate.count += 1;
    aggregate.lastSeen = at;
    this.#sample(aggregate, event, all);
  }

  /** Keeps the first MAX_SAMPLES distinct values of each sampled detail, cut like a key part. */
  #sample(aggregate: Aggregate, event: RecordedEvent, all: Record<string, unknown>): void {
    if (aggregate.details.overflow) return;
    for (const name of sampledDetails(event)) {
      if (!(name in all)) continue;
      aggregate.samples ??= new Map();
      let values = aggregate.samples.get(name);
      if (!values) aggregate.samples.set(name, values = new Set());
      if (values.size < MAX_SAMPLES) values.add(keyPart(all[name]));
    }
  }

  #push(row: store.NewAuditEvent): void {
    this.#buffer.push(row);
    if (this.#buffer.length > this.#max) {
      this.#buffer.shift();
      this.#dropped += 1;
    }
  }

  #moveCounts(): void {
    const aggregates = this.#aggregates;
    this.#aggregates = new Map();
    for (const { columns, details, count, firstSeen, lastSeen, samples } of aggregates.values()) {
      // A sampled detail `username` is written as `usernames`: its first distinct values.
      const examples = Object.fromEntries([...samples ?? []].map(([name, values]) => [`${name}s`, [...values]]));
      this.#push({ ...columns, occurred_at: firstSeen, details: JSON.stringify({ ...details, ...examples, count, firstSeen, lastSeen }) });
    }
    const until = new Date();
    const since = this.#issuedSince;
    const counts = this.#issued;
    this.#issued = new Map();
    this.#issuedSince = until;
    for (const [clientId, count] of counts) {
      this.#push(toRow({
        type: 'token.issued', actor: { type: 'client', id: clientId }, details: { count, since, until },
      }, until));
    }
  }

  /**
   * Writes what is buffered (and waits for a write under way). Never throws. With `counts`, the
   * counts so far (token issuance, refusals) are written too instead of at the end of their interval.
   */
  flush(options: { counts?: boolean } = {}): Promise<void> {
    if (options.counts) this.#moveCounts();
    this.#flushing = this.#flushing.then(() => this.#write());
    return this.#flushing;
  }

  async #write(): Promise<void> {
    if (this.#dropped) {
      const dropped = this.#dropped;
      this.#dropped = 0;
      this.#logger?.warn({ dropped }, 'audit buffer full: oldest events dropped');
      this.#buffer.push(toRow({ type: 'audit.dropped', actor: { type: 'system' }, outcome: 'failure', details: { dropped } }, new Date()));
    }
    while (this.#buffer.length) {
      const batch = this.#buffer.splice(0, this.#batchSize);
      try {
        await store.insertAuditEvents(this.#db, batch);
      } catch (error) {
        // Keep them for the next round (the bound still applies), in order.
        this.#buffer.unshift(...batch.slice(0, Math.max(0, this.#max - this.#buffer.length)));
        this.#logger?.warn({ err: error, pending: this.#buffer.length }, 'audit events not written; will retry');
        return;
      }
    }
  }

  /** Stops the timers and writes everything, issuance counts included. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    this.#moveCounts();
    await this.flush();
  }
}
