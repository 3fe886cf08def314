// What every command needs: the configured database (migrated) and the output format. Command
// modules load this to declare their commands; what opens the database (the configuration, the
// driver, the key material) is in run.ts, loaded when a command runs, so that help and usage
// errors load none of it.
import type { Command } from 'commander';
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import type { Db } from '../db/tables.ts';
import type { AuditSink } from '../domain/audit-events.ts';
import type { Keyring } from '../services/keys.ts';
import { isCleanJson } from '../domain/text.ts';
import type { Output } from './output.ts';

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

/**
 * Wraps a command action: opens the store, applies pending migrations, checks the master key
 * against the stored key material (encrypting rows older than encryption at rest, hashing stored
 * artifacts older than hashed storage), runs, closes (run.ts).
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
    const { runInContext } = await import('./run.ts');
    await runInContext(Boolean(command.optsWithGlobals().json), (ctx) => run(ctx, ...args));
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
