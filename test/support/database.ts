// A fresh, migrated database for each test file: a new database on the Postgres server named by
// TEST_DATABASE_URL when it is set, else an in-memory embedded PGlite (loaded from a migrated
// template, which is much faster than migrating each time).
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { openPostgres, wrapPGlite, type Database } from '../../src/db/database.ts';
import { migrate } from '../../src/db/migrator.ts';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL;
export const onPostgres = Boolean(TEST_DATABASE_URL);
/**
 * Whether a slow suite whose embedded run covers nothing the other suites do not runs here: CI
 * (.ci/run sets CI) runs such suites once, on Postgres; anywhere else they run on whichever
 * database is configured.
 */
export const slowSuitesRunHere = !(process.env.CI && !onPostgres);

export interface TestDatabase {
  database: Database;
  /** Connection string of this database (Postgres only). */
  url: string | undefined;
  drop(): Promise<void>;
}

let template: Blob | File | undefined;

const MIGRATIONS = path.resolve(fileURLToPath(import.meta.url), '../../../migrations');

/**
 * Where the migrated template is kept between test files (each runs in a process of its own,
 * and creating a PGlite cluster takes seconds): named by the migrations and the PGlite version,
 * so a changed migration makes a new one.
 */
function templateFile(): string {
  const hash = createHash('sha256');
  let dir = path.dirname(fileURLToPath(import.meta.resolve('@electric-sql/pglite')));
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  hash.update(JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version);
  for (const name of fs.readdirSync(MIGRATIONS).sort()) hash.update(name).update(fs.readFileSync(path.join(MIGRATIONS, name)));
  return path.join(os.tmpdir(), `postern-test-template-${hash.digest('hex').slice(0, 16)}.tar`);
}

async function loadTemplate(): Promise<Blob> {
  const file = templateFile();
  try {
    return new Blob([fs.readFileSync(file)]);
  } catch {
    // Not made yet: make it, and write it whole under its name (another process may race).
  }
  const pglite = await PGlite.create();
  await migrate(wrapPGlite(pglite));
  const dump = await pglite.dumpDataDir('none');
  await pglite.close();
  const partial = `${file}.${process.pid}`;
  fs.writeFileSync(partial, Buffer.from(await dump.arrayBuffer()));
  fs.renameSync(partial, file);
  // Templates of earlier migrations are of no more use (about 40 MB each).
  for (const name of fs.readdirSync(path.dirname(file))) {
    if (name.startsWith('postern-test-template-') && name.endsWith('.tar') && name !== path.basename(file)) {
      fs.rmSync(path.join(path.dirname(file), name), { force: true });
    }
  }
  return dump;
}

async function embedded(): Promise<TestDatabase> {
  template ??= await loadTemplate();
  const pglite = await PGlite.create({ loadDataDir: template });
  const database = wrapPGlite(pglite);
  return { database, url: undefined, drop: () => database.close() };
}

export function databaseUrl(base: string, name: string): string {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.href;
}

async function postgres(base: string): Promise<TestDatabase> {
  const name = `postern_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = databaseUrl(base, name);
  const database = openPostgres(url, { poolSize: 10 });
  await migrate(database);
  return {
    database,
    url,
    drop: async () => {
      await database.close();
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

export async function createTestDatabase(): Promise<TestDatabase> {
  return TEST_DATABASE_URL ? postgres(TEST_DATABASE_URL) : embedded();
}
