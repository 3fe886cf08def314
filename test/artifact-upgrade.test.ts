// Upgrading across migration 0011: the artifacts an older version stored with their raw values
// (sessions, refresh tokens, codes, opaque tokens in flight) keep working, and no raw value stays.
// The rows are made by a real sign-in, then written back exactly as the older version wrote them
// (raw id, payload as the provider gave it) into a database rolled back to 0010.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareKeys } from '../src/app.ts';
import { ArtifactKey } from '../src/domain/artifact-hashing.ts';
import { sha256Hex } from '../src/domain/crypto.ts';
import { migrate, pendingMigrations } from '../src/db/migrator.ts';
import { Directory } from '../src/oidc/directory.ts';
import { createAdapterFactory } from '../src/oidc/adapter.ts';
import { hashStoredArtifacts } from '../src/services/artifacts.ts';
import { openKeyMaterial } from '../src/services/keys.ts';
import { revokeUserSessions } from '../src/services/users.ts';
import { dumpDatabase, presentAgain, runFullSignIn, valuesIn, WORKING, type Artifacts } from './support/artifacts.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { startServer, type TestServer } from './support/server.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

let tdb: TestDatabase;
let server: TestServer;
let seen: Artifacts;
/** Rows as the version before 0011 wrote them. */
let oldRows: Record<string, unknown>[];
const DEVICE = { id: 'device-code-value-0123456789abcdef', userCode: 'BCDF-GHJK' };

const db = () => tdb.database.db;
const artifactKey = async () => ArtifactKey.fromSecret((await openKeyMaterial(db(), [server.config.masterKey!])).material!.artifactKey);

/** Each stored row, with the raw value it was found by and the payload the provider saved. */
async function asOldVersionWroteThem(key: ArtifactKey): Promise<Record<string, unknown>[]> {
  const rows = await db().selectFrom('oidc_payloads').selectAll().execute();
  return rows.map((row) => {
    const { hashed: _, ...columns } = row;
    const raw = [...seen.values.values()].find((value) => key.storedId(row.model, value) === row.id);
    if (row.model === 'Grant') return { ...columns, payload: JSON.stringify(row.payload) };
    if (!raw) throw new Error(`no value seen for a ${row.model} row`);
    // Registration access tokens were stored under their SHA-256 already, without jti.
    if (row.model === 'RegistrationAccessToken') return { ...columns, id: sha256Hex(raw), payload: JSON.stringify(row.payload) };
    return { ...columns, id: raw, payload: JSON.stringify(key.restore(row.model, row.id, row.payload, raw)) };
  });
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  seen = await runFullSignIn(server.url, db());
  oldRows = await asOldVersionWroteThem(await artifactKey());
  await server.close();
  // Let this process see the closed keep-alive connections before anything else (the embedded
  // database answers without a turn of the event loop), or a later request reuses one.
  await new Promise((resolve) => setTimeout(resolve, 50));

  // Back to migration 0010, with the older version's rows and no artifact key.
  await db().transaction().execute(async (trx) => {
    await sql`delete from oidc_payloads`.execute(trx);
    await sql`alter table oidc_payloads drop column hashed`.execute(trx);
    // Later migrations are independent of this one and stay applied.
    await sql`delete from schema_migrations where name = '0011_hashed_artifacts.sql'`.execute(trx);
    await sql`delete from server_secrets where name = 'artifact_key'`.execute(trx);
    for (const row of oldRows) await trx.insertInto('oidc_payloads').values(row as never).execute();
    // A device code, as the older version stored it (no flow of Postern makes one).
    await trx.insertInto('oidc_payloads').values({
      model: 'DeviceCode', id: DEVICE.id, payload: JSON.stringify({ jti: DEVICE.id, userCode: DEVICE.userCode, kind: 'DeviceCode' }),
      grant_id: null, uid: null, user_code: DEVICE.userCode, expires_at: new Date(Date.now() + 600_000), consumed_at: null,
    } as never).execute();
  });
}, 90_000);

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

describe('an upgrade across migration 0011', () => {
  it('starts from a database that holds raw values', async () => {
    expect(await pendingMigrations(tdb.database)).toEqual(['0011_hashed_artifacts.sql']);
    expect(valuesIn(await dumpDatabase(db()), seen.values).length).toBeGreaterThanOrEqual(10);
  });

  it('hashes every row once, even when processes start together, and none is lost', async () => {
    expect(await migrate(tdb.database)).toEqual(['0011_hashed_artifacts.sql']);
    const config = server.config;
    const starts = await Promise.all([0, 1].map(() => prepareKeys(config, tdb.database, [config.masterKey!])));
    expect(starts.map((start) => start.converted).sort((a, b) => a - b)).toEqual([0, oldRows.length + 1]);
    expect(starts[1]!.keys.artifactKey).toBe(starts[0]!.keys.artifactKey);
    expect(await db().selectFrom('oidc_payloads').select('model').where('hashed', '=', false).execute()).toEqual([]);
    expect(await hashStoredArtifacts(db(), await artifactKey())).toBe(0);
  });

  it('leaves no raw value in the database', async () => {
    const dump = await dumpDatabase(db());
    expect(valuesIn(dump, seen.values)).toEqual([]);
    expect(dump).not.toContain(DEVICE.id);
    expect(dump).not.toContain(DEVICE.userCode);
  });

  it('keeps sessions, codes, refresh and opaque tokens, interactions and registrations working', async () => {
    server = await startServer(tdb.database, {}, '', { port: Number(new URL(server.url).port) });
    expect(await presentAgain(server.url, seen)).toEqual(WORKING);
    const directory = new Directory(db(), null);
    try {
      const adapter = createAdapterFactory(db(), directory, { placeholderSecret: 'x', trustProxy: false, artifactKey: await artifactKey() });
      expect(await adapter('DeviceCode').findByUserCode!(DEVICE.userCode)).toMatchObject({ jti: DEVICE.id, userCode: DEVICE.userCode });
    } finally {
      await directory.close();
    }
  });

  it('keeps revocation by person working on converted rows', async () => {
    const ofPerson = () => db().selectFrom('oidc_payloads').select('model').where('account_id', '=', seen.spa.user.id).execute();
    expect((await ofPerson()).length).toBeGreaterThan(0);
    // The grant of the first sign-in, and that of the pushed request's (another browser).
    expect((await revokeUserSessions(db(), seen.spa.username, NO_AUDIT)).revokedGrants).toBe(2);
    expect(await ofPerson()).toEqual([]);
    expect(await presentAgain(server.url, seen)).toMatchObject({ personToken: false, session: false });
  });

  it('converts a row an older process writes again during a rolling upgrade, keeping the converted one', async () => {
    const key = await artifactKey();
    const token = oldRows.find((row) => row.model === 'ClientCredentials')!;
    const late = 'a-token-written-late-by-an-older-process';
    const fresh = { ...token, id: late, payload: JSON.stringify({ ...JSON.parse(String(token.payload)), jti: late }) };
    // The service token once more under its raw id (converted already), and a new one.
    await db().insertInto('oidc_payloads').values([token, fresh] as never).execute();
    expect(await hashStoredArtifacts(db(), key)).toBe(1);
    const ids = (await db().selectFrom('oidc_payloads').select('id').where('model', '=', 'ClientCredentials').execute()).map((row) => row.id);
    expect(ids.sort()).toEqual([key.storedId('ClientCredentials', String(token.id)), key.storedId('ClientCredentials', late)].sort());
    expect(valuesIn(await dumpDatabase(db()), new Map([['late', late], ['service token', String(token.id)]]))).toEqual([]);
  });
});
