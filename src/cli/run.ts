// Runs one command's action on the configured database: loaded only when a command runs (see
// context.ts), with the configuration, the database driver and the key material it needs.
import os from 'node:os';
import { loadConfig } from '../config.ts';
import { openDatabase } from '../db/database.ts';
import { listMigrations, migrate } from '../db/migrator.ts';
import { resolveMasterKey } from '../platform/master-key.ts';
import { auditAs } from '../domain/audit-events.ts';
import { AuditLog } from '../services/audit.ts';
import { ArtifactKey } from '../domain/artifact-hashing.ts';
import { hashStoredArtifacts } from '../services/artifacts.ts';
import { openKeyMaterial, type Keyring } from '../services/keys.ts';
import type { CommandContext } from './context.ts';
import { createOutput } from './output.ts';

/** Who runs the CLI: the OS user (the audit log's actor for every change made here). */
export function operatorName(): string {
  try {
    return os.userInfo().username || `uid:${process.getuid?.() ?? 'unknown'}`;
  } catch {
    return `uid:${process.getuid?.() ?? 'unknown'}`;
  }
}

/**
 * Opens the store, applies pending migrations, checks the master key against the stored key
 * material (encrypting rows older than encryption at rest, hashing stored artifacts older than
 * hashed storage), runs, closes.
 */
export async function runInContext(json: boolean, run: (ctx: CommandContext) => Promise<void>): Promise<void> {
  const out = createOutput(json);
  const { config, problems } = loadConfig();
  const dbProblems = problems.filter((problem) => problem.startsWith('DATABASE') || problem.startsWith('POSTERN_'));
  if (dbProblems.length) throw new Error(dbProblems.join('; '));
  const database = await openDatabase(config, 'cli');
  // What a command has done is reported even if closing afterwards fails: a new secret is
  // shown once.
  let completed = false;
  try {
    const migrations = { applied: await migrate(database), total: listMigrations().length };
    // The same key as the server's: configured, or in development the file beside the data.
    const keyring: Keyring = [resolveMasterKey(config).key, ...(config.newMasterKey ? [config.newMasterKey] : [])];
    const { material } = await openKeyMaterial(database.db, keyring);
    // Artifacts an older version stored with their raw values (migration 0011).
    if (material) await hashStoredArtifacts(database.db, ArtifactKey.fromSecret(material.artifactKey));
    // No timer: one command's events are written together when it ends.
    const auditLog = new AuditLog(database.db, { flushIntervalMs: 0, countIntervalMs: 0 });
    const audit = auditAs(auditLog, { actor: { type: 'operator', id: operatorName() } });
    try {
      await run({ db: database.db, database, out, config, keyring, audit, migrations });
      completed = true;
    } finally {
      await auditLog.close();
    }
  } finally {
    try {
      await database.close();
    } finally {
      if (completed) out.flush();
    }
  }
}
