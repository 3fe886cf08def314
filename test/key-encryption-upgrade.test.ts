// A database whose keys were stored in plaintext, before encryption at rest: migration 0004 cannot
// encrypt (it has no key), so starts encrypt those rows once, even when several start together.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres, wrapPGlite, type Database } from '../src/db/database.ts';
import { listMigrations, migrate, MIGRATIONS_DIR } from '../src/db/migrator.ts';
import { MasterKey } from '../src/domain/key-encryption.ts';
import { generateSigningKeys, type PrivateKey } from '../src/domain/signing-keys.ts';
import { listKeys } from '../src/services/key-rotation.ts';
import { openKeyMaterial } from '../src/services/keys.ts';
import { databaseUrl, TEST_DATABASE_URL } from './support/database.ts';

const masterKey = MasterKey.generate('POSTERN_MASTER_KEY');
let database: Database;
let drop: () => Promise<void>;
let oldKeys: PrivateKey[];
const cookieKeys = [randomBytes(32).toString('base64url')];

/** A new, empty database (not migrated). */
async function emptyDatabase(): Promise<{ database: Database; drop: () => Promise<void> }> {
  if (!TEST_DATABASE_URL) {
    const db = wrapPGlite(await PGlite.create());
    return { database: db, drop: () => db.close() };
  }
  const name = `postern_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const db = openPostgres(databaseUrl(TEST_DATABASE_URL, name), { poolSize: 10, listen: false });
  return {
    database: db,
    drop: async () => {
      await db.close();
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

beforeAll(async () => {
  ({ database, drop } = await emptyDatabase());
  // The schema as it was before 0004, with keys written the way that version wrote them.
  const before = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-migrations-'));
  for (const name of listMigrations().filter((file) => file < '0004')) {
    fs.copyFileSync(path.join(MIGRATIONS_DIR, name), path.join(before, name));
  }
  await migrate(database, before);
  fs.rmSync(before, { recursive: true, force: true });
  oldKeys = await generateSigningKeys();
  for (const key of oldKeys) {
    await sql`insert into signing_keys (kid, alg, private_jwk) values (${key.kid}, ${key.alg}, ${JSON.stringify(key.privateJwk)}::jsonb)`
      .execute(database.db);
  }
  await sql`insert into server_secrets (name, value) values ('cookie_keys', ${JSON.stringify(cookieKeys)})`.execute(database.db);
  expect(await migrate(database)).toContain('0004_encrypted_keys.sql');
}, 60_000);

afterAll(async () => {
  await drop?.();
}, 60_000);

describe('keys stored before encryption at rest', () => {
  it('keep their public half after migration 0004, for keys list', async () => {
    expect((await listKeys(database.db)).map((key) => key.kid).sort()).toEqual(oldKeys.map((key) => key.kid).sort());
    const rows = await sql<{ public_jwk: Record<string, unknown> }>`select public_jwk from signing_keys`.execute(database.db);
    for (const { public_jwk: jwk } of rows.rows) expect(Object.keys(jwk).filter((k) => ['d', 'p', 'q', 'dp', 'dq', 'qi'].includes(k))).toEqual([]);
  });

  it('are encrypted once by processes starting together, and open to the same keys', async () => {
    // Two "starts" at once; on Postgres they run on two connections and the lock serializes them.
    const results = await Promise.all([openKeyMaterial(database.db, [masterKey]), openKeyMaterial(database.db, [masterKey])]);
    expect(results.map((result) => result.encrypted).sort()).toEqual([0, 4]);
    for (const result of results) {
      expect(result.material?.cookieKeys).toEqual(cookieKeys);
      expect(new Map(result.material!.signingKeys.map((key) => [key.kid, key.privateJwk])))
        .toEqual(new Map(oldKeys.map((key) => [key.kid, key.privateJwk])));
    }
    const rows = await sql<{ plain: number; encrypted: number }>`
      select count(private_jwk)::int as plain, count(encrypted_private_jwk)::int as encrypted from signing_keys`.execute(database.db);
    expect(rows.rows[0]).toEqual({ plain: 0, encrypted: 3 });
    const secrets = await sql<{ value: string | null; encrypted_value: string }>`select value, encrypted_value from server_secrets`.execute(database.db);
    // The cookie keys, encrypted now, and the DPoP nonce secret and artifact key this version adds (encrypted).
    expect(secrets.rows).toEqual([0, 1, 2].map(() => ({ value: null, encrypted_value: expect.stringMatching(new RegExp(`^v1\\.${masterKey.fingerprint}\\.`)) })));
    for (const added of ['dpopNonceSecret', 'artifactKey'] as const) {
      expect(results[0]!.material![added]).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(results[1]!.material![added]).toBe(results[0]!.material![added]);
    }
  });

  it('are not encrypted again on the next start', async () => {
    const before = await sql`select kid, encrypted_private_jwk from signing_keys order by kid`.execute(database.db);
    const again = await openKeyMaterial(database.db, [masterKey]);
    expect(again.encrypted).toBe(0);
    expect((await sql`select kid, encrypted_private_jwk from signing_keys order by kid`.execute(database.db)).rows).toEqual(before.rows);
  });
});
