// The background work of a serving process, in one place: pruning what has expired (tokens, codes,
// revocations, login failures, audit events past their retention), hashing rows an older version
// wrote during a rolling upgrade, and the automatic signing-key rotation. Every process runs it;
// the services' locks let exactly one of them act on each round.
import type { Db } from '../db/tables.ts';
import type { ArtifactKey } from '../domain/artifact-hashing.ts';
import type { AuditSink } from '../domain/audit-events.ts';
import type { Logger } from '../platform/logger.ts';
import { hashStoredArtifacts } from './artifacts.ts';
import { pruneAuditEvents } from './audit-queries.ts';
import { rotateSigningKeysIfDue, type KeyRotation } from './key-rotation.ts';
import type { Keyring } from './keys.ts';
import type { LoginProtection } from './login-protection.ts';
import { pruneConsoleSessions } from './console-sessions.ts';
import { pruneExpired } from './tokens.ts';
import { pruneUsedAssertions } from './trusted-issuers.ts';

/** How often each process checks whether the automatic key rotation is due. */
const ROTATION_CHECK_MS = 60_000;

export interface MaintenanceOptions {
  db: Db;
  logger: Logger;
  audit: AuditSink;
  artifactKey: ArtifactKey;
  protection: LoginProtection;
  /** Seals the keys a rotation makes (`keyring[0]`). */
  keyring: Keyring;
  /** Seconds between pruning rounds (0: never). */
  pruneIntervalSeconds: number;
  /** Audit events older than this many days go at each round (0: kept forever). */
  auditRetentionDays: number;
  keyRotation: { rotationDays: number; propagationSeconds: number };
  now: () => number;
  /** After a rotation this process made, before it reloads its own keys (an audit hook). */
  onKeyRotation?(rotation: KeyRotation): void;
  /** Loads the key set again (the provider holder): this process need not wait for the feed. */
  reloadKeys(): Promise<void>;
}

export interface Maintenance {
  /** Stops the timers, after the rotation check under way (if any). */
  close(): Promise<void>;
}

/** One pruning round; each part fails on its own, logged. */
function prune(options: MaintenanceOptions): void {
  const { db, logger } = options;
  pruneExpired(db).catch((error: unknown) => logger.warn({ err: error }, 'pruning failed'));
  // Rows that processes of an older version wrote during a rolling upgrade (migration 0011).
  hashStoredArtifacts(db, options.artifactKey)
    .then((converted) => { if (converted) logger.info({ rows: converted }, 'hashed artifacts stored with their raw values by an older version'); })
    .catch((error: unknown) => logger.warn({ err: error }, 'hashing artifacts of an older version failed'));
  options.protection.prune().catch((error: unknown) => logger.warn({ err: error }, 'pruning login failures failed'));
  pruneConsoleSessions(db).catch((error: unknown) => logger.warn({ err: error }, 'pruning console sessions failed'));
  pruneAuditEvents(db, options.auditRetentionDays, options.audit)
    .catch((error: unknown) => logger.warn({ err: error }, 'pruning the audit log failed'));
  pruneUsedAssertions(db).catch((error: unknown) => logger.warn({ err: error }, 'pruning used assertion ids failed'));
}

/** The automatic rotation: every process looks; the advisory lock lets one of them rotate. */
async function rotateIfDue(options: MaintenanceOptions): Promise<void> {
  const { rotationDays, propagationSeconds } = options.keyRotation;
  const rotated = await rotateSigningKeysIfDue(options.db, options.keyring, { rotationDays, propagationSeconds, now: options.now() });
  if (!rotated) return;
  options.logger.info({ rotation: rotated }, 'signing keys rotated on schedule');
  for (const key of rotated.added) {
    options.audit.record({
      type: 'key.rotated', actor: { type: 'system' }, target: { type: 'key', id: key.kid },
      details: { alg: key.alg, since: key.activatesAt, reason: 'schedule' },
    });
  }
  options.onKeyRotation?.(rotated);
  await options.reloadKeys();
}

export function startMaintenance(options: MaintenanceOptions): Maintenance {
  const timers: NodeJS.Timeout[] = [];
  if (options.pruneIntervalSeconds > 0) {
    timers.push(setInterval(() => prune(options), options.pruneIntervalSeconds * 1000));
  }
  let checking: Promise<void> | undefined;
  if (options.keyRotation.rotationDays > 0) {
    const check = () => {
      checking ??= rotateIfDue(options)
        .catch((error: unknown) => options.logger.error({ err: error }, 'scheduled key rotation failed'))
        .finally(() => { checking = undefined; });
    };
    timers.push(setInterval(check, ROTATION_CHECK_MS));
    check();
  }
  for (const timer of timers) timer.unref();
  return {
    close: async () => {
      for (const timer of timers) clearInterval(timer);
      await checking;
    },
  };
}
