// Encryption at rest of private keys: the envelope itself, and the stored key material on a real
// database (Postgres with TEST_DATABASE_URL, else embedded).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { JWK } from 'jose';
import { DecryptionError, MasterKey, openSecret, sealSecret } from '../src/domain/key-encryption.ts';
import { listKeys } from '../src/services/key-rotation.ts';
import {
  generateKeyMaterial, MasterKeyError, openKeyMaterial, rotateMasterKey, type KeyMaterial,
} from '../src/services/keys.ts';
import type { Database } from '../src/db/database.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

const keyA = MasterKey.generate('POSTERN_MASTER_KEY');
const keyB = MasterKey.generate('POSTERN_MASTER_KEY');

describe('the envelope', () => {
  it('round-trips, with a fresh nonce each time, and names the key by fingerprint only', () => {
    const one = sealSecret(keyA, 'secret value', 'signing_keys:k1');
    const two = sealSecret(keyA, 'secret value', 'signing_keys:k1');
    expect(one).not.toBe(two);
    expect(one).toMatch(/^v1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    expect(one.split('.')[1]).toBe(keyA.fingerprint);
    expect(one).not.toContain(keyA.exportText().replace(/=+$/, ''));
    expect(openSecret([keyA], one, 'signing_keys:k1')).toBe('secret value');
    expect(openSecret([keyB, keyA], two, 'signing_keys:k1')).toBe('secret value');
  });

  const failure = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(DecryptionError);
      return (error as DecryptionError).reason;
    }
    throw new Error('expected a DecryptionError');
  };

  it('refuses another key, another row, an altered ciphertext or header, and non-envelopes', () => {
    const sealed = sealSecret(keyA, '{"d":"x"}', 'signing_keys:k1');
    expect(failure(() => openSecret([keyB], sealed, 'signing_keys:k1'))).toBe('wrong_key');
    expect(failure(() => openSecret([keyA], sealed, 'signing_keys:k2'))).toBe('integrity');
    const parts = sealed.split('.');
    const flip = (text: string) => (text[0] === 'A' ? 'B' : 'A') + text.slice(1);
    expect(failure(() => openSecret([keyA], [...parts.slice(0, 3), flip(parts[3]!), parts[4]].join('.'), 'signing_keys:k1'))).toBe('integrity');
    expect(failure(() => openSecret([keyA], [...parts.slice(0, 4), flip(parts[4]!)].join('.'), 'signing_keys:k1'))).toBe('integrity');
    expect(failure(() => openSecret([keyA], [parts[0], parts[1], flip(parts[2]!), parts[3], parts[4]].join('.'), 'signing_keys:k1'))).toBe('integrity');
    expect(failure(() => openSecret([keyA], '{"d":"x"}', 'signing_keys:k1'))).toBe('format');
    expect(failure(() => openSecret([keyA], sealed.replace(/^v1/, 'v2'), 'signing_keys:k1'))).toBe('format');
  });

  it('parses base64 and base64url keys of 32 bytes only, and never shows the key', () => {
    const bytes = Buffer.alloc(32, 0xfb);
    expect(MasterKey.parse(bytes.toString('base64'), 'X').fingerprint)
      .toBe(MasterKey.parse(`${bytes.toString('base64url')}\n`, 'X').fingerprint);
    for (const bad of ['', 'short', Buffer.alloc(16).toString('base64'), Buffer.alloc(33).toString('base64'), 'a'.repeat(64)]) {
      expect(() => MasterKey.parse(bad, 'POSTERN_MASTER_KEY')).toThrow(/^POSTERN_MASTER_KEY must be 32 random bytes in base64/);
    }
    const text = keyA.exportText();
    expect(JSON.stringify({ keyA })).not.toContain(text);
    expect(JSON.stringify({ keyA })).toContain(keyA.fingerprint);
    expect(String(Object(keyA)[Symbol.for('nodejs.util.inspect.custom')]())).not.toContain(text);
  });
});

// ---------------------------------------------------------------------------------------------

let tdb: TestDatabase;
let database: Database;
let material: KeyMaterial;

beforeAll(async () => {
  tdb = await createTestDatabase();
  database = tdb.database;
  material = await generateKeyMaterial(database.db, keyA);
}, 60_000);

afterAll(async () => {
  await tdb?.drop();
}, 60_000);

/** Every row of every table, as text: what a database dump would show. */
async function dump(): Promise<string> {
  const tables = await sql<{ name: string }>`
    select table_name as name from information_schema.tables where table_schema = 'public' order by 1`.execute(database.db);
  const texts: string[] = [];
  for (const { name } of tables.rows) {
    const rows = await sql<{ row: string }>`select t::text as row from ${sql.table(name)} t`.execute(database.db);
    texts.push(...rows.rows.map((row) => row.row));
  }
  return texts.join('\n');
}

type Row = Record<string, unknown> & { kid: string; encrypted_private_jwk: string };
const keyRows = () => sql<Row>`select * from signing_keys order by kid`.execute(database.db).then((r) => r.rows);
const secretRows = () => sql<{ value: string | null; encrypted_value: string }>`select * from server_secrets order by name`.execute(database.db).then((r) => r.rows);
const setEnvelope = (kid: string, envelope: string) =>
  database.db.updateTable('signing_keys').set({ encrypted_private_jwk: envelope }).where('kid', '=', kid).execute();
/** Key material in a stable order, to compare. */
const sorted = (keys: KeyMaterial | undefined) =>
  keys && { ...keys, signingKeys: [...keys.signingKeys].sort((a, b) => a.kid.localeCompare(b.kid)) };

/** Runs `fn`, which must fail with a MasterKeyError, and checks that no key row changed. */
async function refusedWithoutChange(fn: () => Promise<unknown>, message: RegExp): Promise<void> {
  const before = [await keyRows(), await secretRows()];
  const error = await fn().then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(MasterKeyError);
  expect((error as Error).message).toMatch(message);
  expect([await keyRows(), await secretRows()]).toEqual(before);
}

describe('stored key material', () => {
  it('is stored encrypted and opens with the master key to the same keys', async () => {
    const opened = await openKeyMaterial(database.db, [keyA]);
    expect(opened.encrypted).toBe(0);
    expect(sorted(opened.material)).toEqual(sorted(material));
    for (const row of await keyRows()) {
      expect(row.private_jwk).toBeNull();
      expect(String(row.encrypted_private_jwk)).toMatch(new RegExp(`^v1\\.${keyA.fingerprint}\\.`));
    }
    expect((await secretRows()).map((row) => [row.value, row.encrypted_value.slice(0, 20)]))
      // The artifact key, the cookie keys, the DPoP nonce secret.
      .toEqual([0, 1, 2].map(() => [null, `v1.${keyA.fingerprint}.`]));
  });

  it('a dump of the database contains no private key member and no cookie key', async () => {
    const text = await dump();
    const secrets = material.signingKeys.flatMap(({ privateJwk }) => ['d', 'p', 'q', 'dp', 'dq', 'qi']
      .map((member) => (privateJwk as Record<string, unknown>)[member]).filter((value): value is string => typeof value === 'string'));
    expect(secrets.length).toBe(3 + 5); // d of EC, OKP and RSA; p, q, dp, dq, qi of RSA
    secrets.push(...material.cookieKeys, material.dpopNonceSecret, material.artifactKey, keyA.exportText().replace(/=+$/, ''));
    for (const secret of secrets) expect(text.includes(secret), 'private material in the dump').toBe(false);
    // The public halves are there, for `keys list` and JWKS.
    expect(text).toContain(String((material.signingKeys[0]!.privateJwk as JWK).x));
  });

  it('keys list shows public facts only', async () => {
    const list = await listKeys(database.db);
    expect(list.map((key) => key.kty).sort()).toEqual(['EC', 'OKP', 'RSA']);
    expect(JSON.stringify(list)).not.toMatch(/"(d|p|q)"|v1\./);
  });

  it('refuses a wrong master key, naming both fingerprints, and changes nothing', async () => {
    await refusedWithoutChange(() => openKeyMaterial(database.db, [keyB]), new RegExp(
      `^POSTERN_MASTER_KEY does not match the key the database was encrypted with \\(the signing key \\S+ is encrypted `
      + `under fingerprint ${keyA.fingerprint}; the configured key has fingerprint ${keyB.fingerprint}\\); nothing was changed$`,
    ));
    await refusedWithoutChange(() => rotateMasterKey(database.db, [keyB], keyA), /does not match/);
  });

  it('refuses a tampered ciphertext, and changes nothing', async () => {
    const row = (await keyRows())[0]!;
    const envelope = row.encrypted_private_jwk;
    const parts = envelope.split('.');
    parts[3] = (parts[3]![0] === 'A' ? 'B' : 'A') + parts[3]!.slice(1);
    await setEnvelope(row.kid, parts.join('.'));
    try {
      await refusedWithoutChange(() => openKeyMaterial(database.db, [keyA]), new RegExp(
        `^the encrypted signing key ${row.kid} fails its integrity check under master key ${keyA.fingerprint} `
        + '\\(it was altered, or copied from another row\\); nothing was changed$',
      ));
    } finally {
      await setEnvelope(row.kid, envelope);
    }
  });

  it('refuses two rows whose ciphertexts were swapped, and changes nothing', async () => {
    const [one, two] = (await keyRows()) as [Row, Row];
    await setEnvelope(one.kid, two.encrypted_private_jwk);
    await setEnvelope(two.kid, one.encrypted_private_jwk);
    try {
      await refusedWithoutChange(() => openKeyMaterial(database.db, [keyA]), /fails its integrity check .*copied from another row/);
    } finally {
      await setEnvelope(one.kid, one.encrypted_private_jwk);
      await setEnvelope(two.kid, two.encrypted_private_jwk);
    }
    expect(sorted((await openKeyMaterial(database.db, [keyA])).material)).toEqual(sorted(material));
  });

  it('rotates the master key: every row under the new key, the same keys, the old key refused', async () => {
    await expect(rotateMasterKey(database.db, [keyA], keyA)).rejects.toThrow(/the new master key is the current one/);
    const result = await rotateMasterKey(database.db, [keyA], keyB);
    expect(result).toEqual({ signingKeys: 3, serverSecrets: 3, from: [keyA.fingerprint], to: keyB.fingerprint });
    const rotated = (await openKeyMaterial(database.db, [keyB])).material;
    expect(sorted(rotated)).toEqual(sorted(material));
    // Re-encrypted, never changed: every stored token is found by its HMAC under the same key.
    expect(rotated?.artifactKey).toBe(material.artifactKey);
    await refusedWithoutChange(() => openKeyMaterial(database.db, [keyA]), /does not match/);
    // With both keys configured (old first, as during a switch), a start opens the rotated rows.
    expect(sorted((await openKeyMaterial(database.db, [keyA, keyB])).material)).toEqual(sorted(material));
    const text = await dump();
    expect(text).not.toContain(`v1.${keyA.fingerprint}.`);
    await rotateMasterKey(database.db, [keyB], keyA);
  });
});
