// Applies migrations/NNNN_description.sql in order, all pending ones in one transaction, under an
// advisory lock so that several processes starting together apply each file exactly once.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import type { Database } from './database.ts';

export const MIGRATIONS_DIR = path.resolve(fileURLToPath(import.meta.url), '../../../migrations');

const FILE_PATTERN = /^\d{4}_[a-z0-9_]+\.sql$/;
const LOCK_KEY = 727_001; // arbitrary, constant: pg_advisory_xact_lock key for migrations

export function listMigrations(dir = MIGRATIONS_DIR): string[] {
  return fs.readdirSync(dir).filter((name) => FILE_PATTERN.test(name)).sort();
}

export async function appliedMigrations(database: Database): Promise<string[]> {
  const exists = await sql<{ present: boolean }>`select to_regclass('schema_migrations') is not null as present`
    .execute(database.db);
  if (!exists.rows[0]?.present) return [];
  const rows = await database.db.selectFrom('schema_migrations').select('name').orderBy('name').execute();
  return rows.map((row) => row.name);
}

/** Migrations on disk that the database has not applied yet. */
export async function pendingMigrations(database: Database, dir = MIGRATIONS_DIR): Promise<string[]> {
  const applied = new Set(await appliedMigrations(database));
  return listMigrations(dir).filter((name) => !applied.has(name));
}

/** Applies what is pending; returns the names applied. */
export async function migrate(database: Database, dir = MIGRATIONS_DIR): Promise<string[]> {
  const applied: string[] = [];
  await database.runScripts(async (exec) => {
    await exec(`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
    await exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      name text PRIMARY KEY,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    // Read inside the lock and the transaction: another process may have applied some meanwhile.
    const rows = await exec('SELECT name FROM schema_migrations');
    const done = new Set(rows.map((row) => String(row.name)));
    for (const name of listMigrations(dir)) {
      if (done.has(name)) continue;
      await exec(fs.readFileSync(path.join(dir, name), 'utf8'));
      await exec(`INSERT INTO schema_migrations (name) VALUES ('${name.replace(/'/g, "''")}')`);
      applied.push(name);
    }
  });
  return applied;
}
