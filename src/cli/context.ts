// What every command needs: the configured database (migrated) and the output format.
import os from 'node:os';
import type { Command } from 'commander';
import { loadConfig, type Config } from '../config.ts';
import { openDatabase, type Database } from '../db/database.ts';
import { listMigrations, migrate } from '../db/migrator.ts';
import type { Db } from '../db/tables.ts';
import { resolveMasterKey } from '../platform/master-key.ts';
import { auditAs, type AuditSink } from '../domain/audit-events.ts';
import { AuditLog } from '../services/audit.ts';
import { ArtifactKey } from '../domain/artifact-hashing.ts';
import { hashStoredArtifacts } from '../services/artifacts.ts';
import { openKeyMaterial, type Keyring } from '../services/keys.ts';
import { isCleanJson } from '../domain/text.ts';
import { createOutput, type Output } from './output.ts';

export interface CommandContext {
  db: Db;
  database: Database;
  out: Output;
  config: Config;
  /** The master key (first) and POSTERN_NEW_MASTER_KEY when set: the keys that open key material. */
  keyring: Keyring;
  /** Records changes as the operator (the OS user running the command); written before exit. */
  audit: AuditSink;
  /** What this command applied before it ran (every command migrates first), of how many there are. */
  migrations: { applied: string[]; total: number };
}

/** Who runs the CLI: the OS user (the audit log's actor for every change made here). */
export function operatorName(): string {
  try {
    return os.userInfo().username || `uid:${process.getuid?.() ?? 'unknown'}`;
  } catch {
    return `uid:${process.getuid?.() ?? 'unknown'}`;
  }
}

/**
 * Wraps a command action: opens the store, applies pending migrations, checks the master key
 * against the stored key material (encrypting rows older than encryption at rest, hashing stored
 * artifacts older than hashed storage), runs, closes.
 */
export function action<A extends unknown[]>(
  run: (ctx: CommandContext, ...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const command = args.at(-1) as Command;
    // What a command is given reaches the database. A shell passes bytes that are not UTF-8 as
    // U+FFFD: refused like NUL, which Postgres refuses in text.
    if (!args.slice(0, -1).every((arg) => isCleanJson(arg) && !JSON.stringify(arg ?? null).includes('\ufffd'))) {
      throw new Error('an argument holds a NUL byte or is not UTF-8 text');
    }
    const out = createOutput(Boolean(command.optsWithGlobals().json));
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
        await run({ db: database.db, database, out, config, keyring, audit, migrations }, ...args);
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
  };
}

/** Splits repeated or space-separated option values into one list. */
export function words(values: string[] | string | undefined): string[] {
  const list = Array.isArray(values) ? values : values ? [values] : [];
  return list.flatMap((value) => value.split(/[\s,]+/)).filter(Boolean);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
