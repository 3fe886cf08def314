// The oidc-provider adapter contract over the oidc_payloads table, on a real database.
import { errors } from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactKey } from '../src/domain/artifact-hashing.ts';
import { createAdapterFactory } from '../src/oidc/adapter.ts';
import { Directory } from '../src/oidc/directory.ts';
import { pruneExpired } from '../src/services/tokens.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

let tdb: TestDatabase;
let adapter: ReturnType<typeof createAdapterFactory>;
let directory: Directory;

beforeAll(async () => {
  tdb = await createTestDatabase();
  directory = new Directory(tdb.database.db, null);
  adapter = createAdapterFactory(tdb.database.db, directory, {
    placeholderSecret: 'placeholder', trustProxy: false, artifactKey: ArtifactKey.fromSecret(ArtifactKey.generateSecret()),
  });
});

afterAll(async () => {
  await directory?.close();
  await tdb?.drop();
});

let n = 0;
const id = () => `id-${++n}-${Math.random().toString(36).slice(2)}`;

describe('payload adapter', () => {
  it('upserts and finds, keeping models apart', async () => {
    const codes = adapter('AuthorizationCode');
    const tokens = adapter('AccessToken');
    const key = id();
    await codes.upsert(key, { jti: key, kind: 'AuthorizationCode', grantId: 'g1' }, 60);
    expect(await codes.find(key)).toEqual({ jti: key, kind: 'AuthorizationCode', grantId: 'g1' });
    expect(await tokens.find(key)).toBeUndefined();
    await codes.upsert(key, { jti: key, kind: 'AuthorizationCode', grantId: 'g2', extra: { n: 1 } }, 60);
    expect(await codes.find(key)).toMatchObject({ grantId: 'g2', extra: { n: 1 } });
  });

  it('answers lookups of one id as several models at once, each with its own model', async () => {
    const key = id();
    await adapter('ClientCredentials').upsert(key, { jti: key, kind: 'ClientCredentials' }, 60);
    const [asAccessToken, asClientCredentials, asRefreshToken] = await Promise.all([
      adapter('AccessToken').find(key),
      adapter('ClientCredentials').find(key),
      adapter('RefreshToken').find(key),
    ]);
    expect(asAccessToken).toBeUndefined();
    expect(asClientCredentials).toEqual({ jti: key, kind: 'ClientCredentials' });
    expect(asRefreshToken).toBeUndefined();
    // The same model asked twice in one turn, and another id alongside.
    const other = id();
    await adapter('AccessToken').upsert(other, { jti: other }, 60);
    const twice = await Promise.all([
      adapter('ClientCredentials').find(key), adapter('ClientCredentials').find(key), adapter('AccessToken').find(other),
    ]);
    expect(twice).toEqual([{ jti: key, kind: 'ClientCredentials' }, { jti: key, kind: 'ClientCredentials' }, { jti: other }]);
  });

  it('finds by uid and by user code', async () => {
    const sessions = adapter('Session');
    const key = id();
    await sessions.upsert(key, { jti: key, uid: `uid-${key}` }, 60);
    expect(await sessions.findByUid!(`uid-${key}`)).toMatchObject({ jti: key });
    expect(await sessions.findByUid!('nope')).toBeUndefined();
    const devices = adapter('DeviceCode');
    await devices.upsert(key, { jti: key, userCode: `UC-${key}` }, 60);
    expect(await devices.findByUserCode!(`UC-${key}`)).toMatchObject({ jti: key });
  });

  it('stores no bearer value: ids and user codes hashed, values read back sealed', async () => {
    const [key, uid] = [id(), id()];
    const device = { jti: key, kind: 'DeviceCode', userCode: `UC-${key}`, grantId: 'g-device' };
    const session = { jti: key, kind: 'Session', uid, accountId: 'acct-1' };
    const interaction = {
      jti: key, kind: 'Interaction', returnTo: `https://issuer.example/auth/${key}`, parJti: `par-${key}`,
      session: { uid, cookie: `cookie-${key}`, accountId: 'acct-1' }, params: { state: 'st' },
    };
    await adapter('DeviceCode').upsert(key, device, 60);
    await adapter('Session').upsert(key, session, 60);
    await adapter('Interaction').upsert(key, interaction, 60);
    const rows = await tdb.database.db.selectFrom('oidc_payloads').selectAll()
      .where('model', 'in', ['DeviceCode', 'Session', 'Interaction']).execute();
    const text = JSON.stringify(rows);
    for (const value of [key, `UC-${key}`, `cookie-${key}`, `par-${key}`]) expect(text).not.toContain(value);
    // What is not a bearer value stays readable (revocation and session binding look it up).
    expect(text).toContain(uid);
    expect(text).toContain('g-device');
    // Found by the value presented, exactly as saved; the caller's objects untouched.
    expect(await adapter('DeviceCode').findByUserCode!(`UC-${key}`)).toEqual(device);
    expect(await adapter('DeviceCode').find(key)).toEqual(device);
    expect(await adapter('Session').findByUid!(uid)).toEqual(session);
    expect(await adapter('Interaction').find(key)).toEqual(interaction);
    expect(interaction.session.cookie).toBe(`cookie-${key}`);
  });

  it('treats sealed values copied into another row as absent', async () => {
    const [a, b] = [id(), id()];
    const sessions = adapter('Session');
    await sessions.upsert(a, { jti: a, uid: `uid-${a}` }, 60);
    await sessions.upsert(b, { jti: b, uid: `uid-${b}` }, 60);
    const db = tdb.database.db;
    const rowOf = (uid: string) => db.selectFrom('oidc_payloads').select(['id', 'payload']).where('model', '=', 'Session').where('uid', '=', uid).executeTakeFirstOrThrow();
    const [rowA, rowB] = [await rowOf(`uid-${a}`), await rowOf(`uid-${b}`)];
    await db.updateTable('oidc_payloads').set({ payload: JSON.stringify({ ...rowB.payload, sealed: rowA.payload.sealed }) })
      .where('model', '=', 'Session').where('id', '=', rowB.id).execute();
    expect(await sessions.findByUid!(`uid-${b}`)).toBeUndefined();
    expect(await sessions.find(b)).toBeUndefined();
    expect(await sessions.findByUid!(`uid-${a}`)).toMatchObject({ jti: a });
  });

  it('does not return expired artifacts, and prunes them', async () => {
    const tokens = adapter('AccessToken');
    const key = id();
    await tokens.upsert(key, { jti: key }, 1);
    expect(await tokens.find(key)).toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(await tokens.find(key)).toBeUndefined();
    const pruned = await pruneExpired(tdb.database.db);
    expect(pruned.artifacts).toBeGreaterThanOrEqual(1);
  });

  it('marks a consumed artifact, and refuses a second consume with invalid_grant', async () => {
    const codes = adapter('AuthorizationCode');
    const key = id();
    await codes.upsert(key, { jti: key }, 60);
    await codes.consume(key);
    expect((await codes.find(key))?.consumed).toBeTypeOf('number');
    await expect(codes.consume(key)).rejects.toBeInstanceOf(errors.InvalidGrant);
  });

  it('lets exactly one of many concurrent consumes of one code or refresh token win', async () => {
    for (const model of ['AuthorizationCode', 'RefreshToken']) {
      const store = adapter(model);
      const key = id();
      await store.upsert(key, { jti: key }, 60);
      const results = await Promise.allSettled(Array.from({ length: 10 }, () => store.consume(key)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(rejected).toHaveLength(9);
      for (const r of rejected) expect(r.reason).toBeInstanceOf(errors.InvalidGrant);
    }
  });

  it('destroys one artifact, and revokes every artifact of a grant', async () => {
    const tokens = adapter('AccessToken');
    const refresh = adapter('RefreshToken');
    const [a, b, c] = [id(), id(), id()];
    await tokens.upsert(a, { jti: a, grantId: 'grant-x' }, 60);
    await refresh.upsert(b, { jti: b, grantId: 'grant-x' }, 60);
    await tokens.upsert(c, { jti: c, grantId: 'grant-y' }, 60);
    await tokens.destroy(c);
    expect(await tokens.find(c)).toBeUndefined();
    await tokens.revokeByGrantId('grant-x');
    expect(await tokens.find(a)).toBeUndefined();
    expect(await refresh.find(b)).toBeUndefined();
  });
});

describe('client adapter', () => {
  it('is read-only and hides unknown clients', async () => {
    const clients = adapter('Client');
    expect(await clients.find('unknown')).toBeUndefined();
    await expect(clients.upsert('x', {}, 0)).rejects.toThrow(/read-only/);
  });
});
