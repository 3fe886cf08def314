// Upgrades as an operator runs them: `postern migrate` names what it applied; a server started
// with MIGRATE_ON_START off (the production default) refuses a database that lacks a migration,
// in one line naming `postern migrate`, and changes nothing; development applies it at start.
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/database.ts';
import { listMigrations, migrate, MIGRATIONS_DIR, pendingMigrations } from '../src/db/migrator.ts';
import { databaseUrl, onPostgres, TEST_DATABASE_URL } from './support/database.ts';
import { cleanUp, describeRun, freePort, MAIN, makeTempDir, postern, run, ServerProcess, type Env } from './support/process.ts';
import { TEST_MASTER_KEY } from './support/server.ts';

const ALL = listMigrations();
const LAST = ALL.at(-1)!;
const created: string[] = [];

afterAll(async () => {
  await cleanUp();
  if (!TEST_DATABASE_URL) return;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  for (const name of created) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}, 60_000);

/** The settings of an empty store: a new Postgres database, or a new embedded data folder. */
async function emptyStore(): Promise<Env> {
  const dataDir = path.join(makeTempDir('pst-up-'), 'data');
  if (!TEST_DATABASE_URL) return { POSTERN_DATA_DIR: dataDir, POSTERN_MASTER_KEY: TEST_MASTER_KEY };
  const name = `postern_test_up_${process.pid}_${created.length}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  created.push(name);
  return { DATABASE_URL: databaseUrl(TEST_DATABASE_URL, name), POSTERN_DATA_DIR: dataDir, POSTERN_MASTER_KEY: TEST_MASTER_KEY };
}

async function withStore<T>(env: Env, use: (database: Database) => Promise<T>): Promise<T> {
  const database = await openDatabase({ databaseUrl: env.DATABASE_URL, databasePoolSize: 2, dataDir: env.POSTERN_DATA_DIR! }, 'cli');
  try {
    return await use(database);
  } finally {
    await database.close();
  }
}

/** Applies every migration but the last: the database of the version before. */
async function migrateAllButLast(env: Env): Promise<void> {
  const before = makeTempDir('pst-mig-');
  for (const name of ALL.slice(0, -1)) fs.copyFileSync(path.join(MIGRATIONS_DIR, name), path.join(before, name));
  await withStore(env, (database) => migrate(database, before));
}

async function cli(args: string[], env: Env): Promise<string> {
  const result = await postern(args, env, 60_000);
  expect(result.code, describeRun(args, result)).toBe(0);
  expect(result.stderr).toBe('');
  return result.stdout;
}

const refusal = `the database lacks 1 migration of this version (${LAST}): apply it with \`postern migrate\` (MIGRATE_ON_START is off)`;

describe(`postern migrate (${onPostgres ? 'Postgres' : 'embedded'})`, () => {
  it('on an empty database names every migration it applies, then says the schema is up to date', async () => {
    const env = await emptyStore();
    expect(await cli(['migrate'], env)).toBe(`${ALL.map((name) => `applied ${name}\n`).join('')}database schema is up to date (${ALL.length} migrations)\n`);
    expect(await cli(['migrate'], env)).toBe(`database schema is up to date (${ALL.length} migrations)\n`);
    expect(JSON.parse(await cli(['--json', 'migrate'], env))).toEqual({ applied: [], migrations: ALL.length, upToDate: true });
  }, 120_000);
});

describe(`a server and pending migrations (${onPostgres ? 'Postgres' : 'embedded'})`, () => {
  let env: Env;
  let port: number;

  beforeAll(async () => {
    env = await emptyStore();
    await migrateAllButLast(env);
    port = await freePort();
  }, 120_000);

  it('with MIGRATE_ON_START=false: refuses to start, in one line naming `postern migrate`, and applies nothing', async () => {
    const result = await run([MAIN], { env: { ...env, PORT: String(port), MIGRATE_ON_START: 'false' }, timeoutMs: 60_000 });
    expect(result.code, describeRun(['src/main.ts'], result, 'node')).toBe(1);
    expect(result.stderr).toBe(`Postern cannot start:\n  - ${refusal}\n`);
    expect(await withStore(env, pendingMigrations)).toEqual([LAST]);
  }, 90_000);

  it.skipIf(!onPostgres)('in production (off by default): refuses in the same words', async () => {
    const result = await run([MAIN], {
      env: { ...env, NODE_ENV: 'production', ISSUER: 'https://auth.example.com', HOST: '127.0.0.1', PORT: String(port) },
      timeoutMs: 60_000,
    });
    expect(result.code, describeRun(['src/main.ts'], result, 'node')).toBe(1);
    expect(result.stderr.split('\n')).toContain(`  - ${refusal}`);
    expect(await withStore(env, pendingMigrations)).toEqual([LAST]);
  }, 90_000);

  it('postern migrate applies the missing one, naming it; then the server starts with MIGRATE_ON_START=false', async () => {
    expect(await cli(['migrate'], env)).toBe(`applied ${LAST}\ndatabase schema is up to date (${ALL.length} migrations)\n`);
    const server = new ServerProcess({ ...env, PORT: String(port), MIGRATE_ON_START: 'false', LOG_LEVEL: 'info' });
    await server.waitUntilHealthy(`http://127.0.0.1:${port}`, 60_000);
    expect(server.stdout).not.toContain('migrations applied');
    expect(await server.stop('SIGTERM', 20_000), server.output).toEqual({ code: 0, signal: null });
  }, 120_000);

  it('in development (on by default): applies a missing migration at start and logs it', async () => {
    const older = await emptyStore();
    await migrateAllButLast(older);
    const server = new ServerProcess({ ...older, PORT: String(port), LOG_LEVEL: 'info' });
    await server.waitUntilHealthy(`http://127.0.0.1:${port}`, 60_000);
    await server.waitForOutput(/"msg":"migrations applied"/, 10_000);
    expect(server.stdout).toContain(`"migrations":["${LAST}"]`);
    expect(await server.stop('SIGTERM', 20_000), server.output).toEqual({ code: 0, signal: null });
  }, 120_000);
});
