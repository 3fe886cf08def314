// A fresh, migrated database for each test file: a new database on the Postgres server named by
// TEST_DATABASE_URL when it is set, else an in-memory embedded PGlite (loaded from a migrated
// template, which is much faster than migrating each time).
import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { openPostgres, wrapPGlite, type Database } from '../../src/db/database.ts';
import { migrate } from '../../src/db/migrator.ts';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL;
export const onPostgres = Boolean(TEST_DATABASE_URL);

export interface TestDatabase {
  database: Database;
  /** Connection string of this database (Postgres only). */
  url: string | undefined;
  drop(): Promise<void>;
}

let template: Blob | File | undefined;

async function embedded(): Promise<TestDatabase> {
  if (!template) {
    const pglite = await PGlite.create();
    await migrate(wrapPGlite(pglite));
    template = await pglite.dumpDataDir('none');
    await pglite.close();
  }
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
