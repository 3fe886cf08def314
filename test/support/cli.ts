// The set-up every CLI suite shares: a migrated store for `postern` commands run as child
// processes (a new Postgres database with TEST_DATABASE_URL, else a fresh embedded data folder),
// dropped afterwards.
import path from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { createTestDatabase, onPostgres, type TestDatabase } from './database.ts';
import { cleanUp, describeRun, makeTempDir, postern, type Env } from './process.ts';

export interface CliStore {
  /** The environment of every command (read it inside tests: it is set in beforeAll). */
  readonly env: Env;
  /** A temporary folder of the suite's own. */
  readonly home: string;
}

export function useCliStore(prefix: string): CliStore {
  let env: Env = {};
  let home = '';
  let tdb: TestDatabase | undefined;
  beforeAll(async () => {
    home = makeTempDir(prefix);
    if (onPostgres) {
      tdb = await createTestDatabase();
      // POSTERN_DATA_DIR points at a folder nothing uses: DATABASE_URL must win.
      env = { DATABASE_URL: tdb.url, POSTERN_DATA_DIR: path.join(home, 'unused') };
    } else {
      env = { POSTERN_DATA_DIR: path.join(home, 'data') };
    }
    // The first command creates the embedded data folder (initdb takes several seconds).
    const first = await postern(['migrate'], env, 120_000);
    expect(first.code, describeRun(['migrate'], first)).toBe(0);
  }, 180_000);
  afterAll(async () => {
    await cleanUp();
    await tdb?.drop();
  }, 60_000);
  return { get env() { return env; }, get home() { return home; } };
}
