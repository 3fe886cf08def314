// Signing-key rotation in one server process, with a clock the test moves: the state of each key
// at each moment, what the JWKS holds then, which key signs, and the automatic schedule. The
// provider itself runs on the real clock (token iat/exp); only key states follow the test clock.
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MasterKey } from '../src/domain/key-encryption.ts';
import { SIGNED_TOKEN_MAX_LIFETIME_SECONDS } from '../src/domain/signing-keys.ts';
import { deriveKeyState, nextKeyTransition } from '../src/domain/key-state.ts';
import {
  createKeySetLoader, listKeys, rotateSigningKeys, rotateSigningKeysIfDue, type KeyRotation,
} from '../src/services/key-rotation.ts';
import { MasterKeyError } from '../src/services/keys.ts';
import { adminCall, adminClient, tokenFor } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { postForm, startServer, TEST_MASTER_KEY, type TestServer } from './support/server.ts';

const S = 1000;
const DAY = 86_400 * S;
const PROPAGATION = 600;

describe('the state of a key, from its dates', () => {
  const at = (seconds: number) => new Date(seconds * S);
  const key = { activates_at: at(100), retires_at: at(200), remove_after: at(300) };

  it('is next, active, retiring, then retired, changing exactly at each date', () => {
    expect([0, 99.999, 100, 199.999, 200, 299.999, 300, 1e6].map((t) => deriveKeyState(key, t * S)))
      .toEqual(['next', 'next', 'active', 'active', 'retiring', 'retiring', 'retired', 'retired']);
    expect([0, 100, 250, 300].map((t) => nextKeyTransition(key, t * S))).toEqual([100 * S, 200 * S, 300 * S, undefined]);
  });

  it('stays active while no newer key is scheduled', () => {
    const current = { activates_at: at(100), retires_at: null, remove_after: null };
    expect(deriveKeyState(current, 1e12)).toBe('active');
    expect(nextKeyTransition(current, 150 * S)).toBeUndefined();
  });
});

describe('rotation on a running server', () => {
  let tdb: TestDatabase;
  let server: TestServer;
  let offset = 0;
  const now = () => Date.now() + offset;
  const keyring = [MasterKey.parse(TEST_MASTER_KEY, 'POSTERN_MASTER_KEY')] as const;
  let client: { id: string; secret: string };
  const resources: Record<string, string> = {};
  let rotation: KeyRotation;
  const before: Record<string, { kid: string; token: string }> = {};

  const jwks = async () => {
    const res = await fetch(`${server.url}/jwks`);
    expect(res.status).toBe(200);
    return { body: (await res.json()) as JSONWebKeySet, cacheControl: res.headers.get('cache-control') };
  };
  const kidsOf = (set: JSONWebKeySet) => set.keys.map((key) => key.kid!).sort();
  const tokenOf = async (alg: string) => {
    const res = await postForm(`${server.url}/token`, { grant_type: 'client_credentials', resource: resources[alg]! }, client);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const token = res.body.access_token as string;
    return { token, kid: decodeProtectedHeader(token).kid! };
  };
  const introspect = async (token: string) =>
    (await postForm(`${server.url}/token/introspection`, { token }, client)).body.active as boolean;
  const verify = async (token: string) => {
    const { body } = await jwks();
    return jwtVerify(token, createLocalJWKSet(body), { issuer: server.url, typ: 'at+jwt' }).then(() => true, () => false);
  };
  const states = async () => Object.fromEntries((await listKeys(tdb.database.db, now())).map((key) => [key.kid, key.state]));

  beforeAll(async () => {
    tdb = await createTestDatabase();
    server = await startServer(tdb.database, { KEY_PROPAGATION_SECONDS: String(PROPAGATION) }, '', { now });
    const db = tdb.database.db;
    // One API per signing algorithm: the EC, RSA and OKP keys all rotate.
    const grants = [];
    for (const alg of ['ES256', 'RS256', 'EdDSA'] as const) {
      const created = await api(db, { scopes: ['read'], signingAlg: alg });
      resources[alg] = created.identifier;
      grants.push({ api: created.identifier, scopes: ['read'] });
    }
    client = await serviceClient(db, [(await role(db, grants)).name]);
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await tdb?.drop();
  }, 60_000);

  it('starts with one active key per type, published with a max-age shorter than the propagation delay', async () => {
    const listed = await listKeys(tdb.database.db, now());
    expect(listed.map((key) => [key.alg, key.state, key.retiresAt, key.removeAfter]).sort())
      .toEqual([['ES256', 'active', null, null], ['EdDSA', 'active', null, null], ['RS256', 'active', null, null]]);
    const { body, cacheControl } = await jwks();
    expect(kidsOf(body)).toEqual(listed.map((key) => key.kid).sort());
    expect(cacheControl).toBe(`public, max-age=${PROPAGATION / 2}`);
    for (const alg of ['ES256', 'RS256', 'EdDSA']) {
      before[alg] = await tokenOf(alg);
      expect(before[alg]!.kid).toBe(listed.find((key) => key.alg === alg)!.kid);
    }
  });

  it('publishes the new keys at once, but keeps signing with the current ones (next)', async () => {
    rotation = await rotateSigningKeys(tdb.database.db, keyring, { propagationSeconds: PROPAGATION, now: now() });
    expect(rotation.added.map((key) => key.alg).sort()).toEqual(['ES256', 'EdDSA', 'RS256']);
    expect(rotation.retiring.map((key) => key.kid).sort()).toEqual(Object.values(before).map((b) => b.kid).sort());
    const activatesAt = Date.parse(rotation.added[0]!.activatesAt);
    expect(activatesAt - Date.parse(rotation.rotatedAt)).toBe(PROPAGATION * S);
    expect(Date.parse(rotation.retiring[0]!.retiresAt)).toBe(activatesAt);
    expect(Date.parse(rotation.retiring[0]!.removeAfter) - activatesAt).toBe(SIGNED_TOKEN_MAX_LIFETIME_SECONDS * S);

    await server.app.providers.refresh();
    const { body } = await jwks();
    expect(kidsOf(body)).toEqual([...rotation.added, ...rotation.retiring].map((key) => key.kid).sort());
    for (const key of body.keys) expect(Object.keys(key).filter((name) => ['d', 'p', 'q', 'dp', 'dq', 'qi'].includes(name))).toEqual([]);
    const kidStates = await states();
    for (const key of rotation.added) expect(kidStates[key.kid]).toBe('next');
    for (const key of rotation.retiring) expect(kidStates[key.kid]).toBe('active');
    // Even a minute before activation, nothing signs with a next key.
    offset = PROPAGATION * S - 60_000;
    await server.app.providers.refresh();
    for (const alg of ['ES256', 'RS256', 'EdDSA']) expect((await tokenOf(alg)).kid).toBe(before[alg]!.kid);
  });

  it('refuses a second rotation while one is under way', async () => {
    await expect(rotateSigningKeys(tdb.database.db, keyring, { propagationSeconds: PROPAGATION, now: now() }))
      .rejects.toThrow(/^a rotation is under way: .* become active at /);
  });

  it('signs with the new keys from the activation on; tokens from before still verify and introspect (retiring)', async () => {
    offset = PROPAGATION * S;
    await server.app.providers.refresh();
    const kidStates = await states();
    for (const key of rotation.added) expect(kidStates[key.kid]).toBe('active');
    for (const key of rotation.retiring) expect(kidStates[key.kid]).toBe('retiring');
    const { body } = await jwks();
    expect(body.keys).toHaveLength(6);
    for (const alg of ['ES256', 'RS256', 'EdDSA']) {
      const after = await tokenOf(alg);
      expect(after.kid).toBe(rotation.added.find((key) => key.alg === alg)!.kid);
      for (const token of [before[alg]!.token, after.token]) {
        expect(await verify(token)).toBe(true);
        expect(await introspect(token)).toBe(true);
      }
    }
    // The admin API, too, accepts tokens signed by either key.
    const admin = await adminClient(tdb.database.db, ['admin:read']);
    const reply = await adminCall(server.url, 'GET', '/keys', { token: await tokenFor(server.url, admin) });
    expect(reply.status).toBe(200);
    expect(reply.body.items).toHaveLength(6);
  });

  it('unpublishes the old keys once every token they signed has expired (retired)', async () => {
    offset = PROPAGATION * S + SIGNED_TOKEN_MAX_LIFETIME_SECONDS * S;
    await server.app.providers.refresh();
    const kidStates = await states();
    for (const key of rotation.retiring) expect(kidStates[key.kid]).toBe('retired');
    const { body } = await jwks();
    expect(kidsOf(body)).toEqual(rotation.added.map((key) => key.kid).sort());
    // A token signed by a retired key is nobody's any more (in real time it would have expired).
    expect(await verify(before.ES256!.token)).toBe(false);
    expect(await introspect(before.ES256!.token)).toBe(false);
  });

  it('rotates on schedule once, however many processes find it due at the same time', async () => {
    const { db } = tdb.database;
    const options = { rotationDays: 30, propagationSeconds: PROPAGATION };
    // Due 30 days after the newest key started signing.
    const newest = Math.max(...(await listKeys(db, now())).map((key) => Date.parse(key.activatesAt)));
    expect(await rotateSigningKeysIfDue(db, keyring, { ...options, now: newest + 30 * DAY - 1 })).toBeUndefined();
    expect(await rotateSigningKeysIfDue(db, keyring, { ...options, rotationDays: 0, now: newest + 365 * DAY })).toBeUndefined();
    // On Postgres these run on separate connections; the advisory lock serializes them.
    const due = newest + 30 * DAY;
    const results = await Promise.all([1, 2, 3, 4].map(() => rotateSigningKeysIfDue(db, keyring, { ...options, now: due })));
    const rotations = results.filter((result) => result !== undefined);
    expect(rotations).toHaveLength(1);
    expect(rotations[0]!.trigger).toBe('schedule');
    expect((await listKeys(db, due)).filter((key) => key.state === 'next')).toHaveLength(3);
  });

  it('runs the schedule in the server, and tells the audit hook', async () => {
    // A second server whose clock is past the next due date: it rotates when it starts.
    const told: KeyRotation[] = [];
    const newest = Math.max(...(await listKeys(tdb.database.db)).map((key) => Date.parse(key.activatesAt)));
    const start = Date.now();
    const later = () => newest + 30 * DAY + (Date.now() - start);
    const second = await startServer(tdb.database, { KEY_ROTATION_DAYS: '30' }, '', { now: later, onKeyRotation: (r) => told.push(r) });
    try {
      for (let i = 0; i < 100 && told.length === 0; i += 1) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(told).toHaveLength(1);
      expect(told[0]!.trigger).toBe('schedule');
      const { body } = (await fetch(`${second.url}/jwks`).then(async (res) => ({ body: (await res.json()) as JSONWebKeySet })));
      for (const key of told[0]!.added) expect(kidsOf(body)).toContain(key.kid);
    } finally {
      await second.close();
    }
  });

  it('refuses to add keys under a master key other than the stored keys\' one', async () => {
    const other = MasterKey.generate('POSTERN_MASTER_KEY');
    const error = await rotateSigningKeysIfDue(tdb.database.db, [other], { rotationDays: 1, propagationSeconds: PROPAGATION, now: now() + 400 * DAY })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(MasterKeyError);
    expect((error as Error).message).toMatch(new RegExp(`encrypted under master key ${keyring[0].fingerprint}; this process has ${other.fingerprint}`));
  });

  it('publishes keys a process cannot decrypt, and signs with none of them', async () => {
    const set = await createKeySetLoader(tdb.database.db, [MasterKey.generate('POSTERN_MASTER_KEY')])(now());
    expect(set.keys.length).toBeGreaterThan(0);
    expect(set.unopened.sort()).toEqual(set.keys.map((key) => key.kid).sort());
    expect(set.keys.filter((key) => key.signs)).toEqual([]);
  });
});
