// A leaked signing key (docs/keys.md, "A leaked key"): `postern keys revoke <kid>` takes it out of
// the JWKS at once, so tokens it signed neither verify nor introspect; when it was signing, a key
// of its type signs from then on (a scheduled one brought forward, or a new one); the other types
// are untouched. On Postgres, the CLI revokes while a server runs, and the server follows through
// the change feed without being told.
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MasterKey } from '../src/domain/key-encryption.ts';
import { listKeys, revokeSigningKey, rotateSigningKeys } from '../src/services/key-rotation.ts';
import { ServiceError } from '../src/services/errors.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { cleanUp, describeRun, postern } from './support/process.ts';
import { postForm, startServer, TEST_MASTER_KEY, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let server: TestServer;
let client: { id: string; secret: string };
const resources: Record<string, string> = {};
const keyring = [MasterKey.parse(TEST_MASTER_KEY, 'test')] as const;

const jwks = async () => (await (await fetch(`${server.url}/jwks`)).json()) as JSONWebKeySet;
const kids = async () => (await jwks()).keys.map((key) => key.kid!).sort();
async function token(alg: string): Promise<{ token: string; kid: string }> {
  const res = await postForm(`${server.url}/token`, { grant_type: 'client_credentials', resource: resources[alg]! }, client);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { token: res.body.access_token, kid: decodeProtectedHeader(res.body.access_token).kid! };
}
const active = async (value: string) => (await postForm(`${server.url}/token/introspection`, { token: value }, client)).body.active as boolean;
const verifies = async (value: string) => jwtVerify(value, createLocalJWKSet(await jwks()), { issuer: server.url }).then(() => true, () => false);
const signerOf = async (alg: string) => (await listKeys(tdb.database.db)).filter((key) => key.alg === alg && key.state === 'active');

/** Until `condition` holds: the change feed (Postgres) or the 5-second look (embedded) brings the keys. */
async function eventually(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  const grants = [];
  for (const alg of ['ES256', 'RS256'] as const) {
    resources[alg] = (await api(tdb.database.db, { scopes: ['read'], signingAlg: alg })).identifier;
    grants.push({ api: resources[alg]!, scopes: ['read'] });
  }
  client = await serviceClient(tdb.database.db, [(await role(tdb.database.db, grants)).name]);
}, 60_000);

afterAll(async () => {
  await cleanUp();
  await server?.close();
  await tdb?.drop();
}, 60_000);

describe('revoking a leaked signing key', () => {
  it('takes the signing key out of the JWKS at once, and a new key of its type signs', async () => {
    const leaked = await token('ES256');
    const other = await token('RS256');
    expect(await active(leaked.token)).toBe(true);

    const revocation = await revokeSigningKey(tdb.database.db, keyring, leaked.kid);
    expect(revocation.revoked).toEqual({ kid: leaked.kid, alg: 'ES256', state: 'active' });
    expect(revocation.replacement).toMatchObject({ alg: 'ES256', created: true });
    await server.app.providers.refresh();

    expect(await kids()).not.toContain(leaked.kid);
    expect(await kids()).toContain(revocation.replacement!.kid);
    // RFC 7662 §2.2: a token whose key is gone is not active; nor does it verify against the JWKS.
    expect(await active(leaked.token)).toBe(false);
    expect(await verifies(leaked.token)).toBe(false);
    const fresh = await token('ES256');
    expect(fresh.kid).toBe(revocation.replacement!.kid);
    expect(await active(fresh.token)).toBe(true);
    expect(await verifies(fresh.token)).toBe(true);
    // The other types go on as they were.
    expect((await token('RS256')).kid).toBe(other.kid);
    expect(await active(other.token)).toBe(true);
    expect((await listKeys(tdb.database.db)).find((key) => key.kid === leaked.kid)?.state).toBe('retired');
  });

  it('brings a key a rotation scheduled forward rather than making another', async () => {
    const rotation = await rotateSigningKeys(tdb.database.db, keyring, { propagationSeconds: 3600 });
    const scheduled = rotation.added.find((key) => key.alg === 'RS256')!;
    const leaked = await token('RS256');
    expect(leaked.kid).not.toBe(scheduled.kid);
    const revocation = await revokeSigningKey(tdb.database.db, keyring, leaked.kid);
    expect(revocation.replacement).toEqual({ kid: scheduled.kid, alg: 'RS256', created: false });
    await server.app.providers.refresh();
    expect((await token('RS256')).kid).toBe(scheduled.kid);
    expect(await active(leaked.token)).toBe(false);
    expect((await signerOf('RS256')).map((key) => key.kid)).toEqual([scheduled.kid]);
    // The ES256 key the rotation scheduled still waits for its time.
    const es256Next = rotation.added.find((key) => key.alg === 'ES256')!;
    expect((await listKeys(tdb.database.db)).find((key) => key.kid === es256Next.kid)?.state).toBe('next');
  });

  it('takes a key that does not sign out without a replacement; refuses an unknown or already removed one', async () => {
    const next = (await listKeys(tdb.database.db)).find((key) => key.alg === 'ES256' && key.state === 'next')!;
    const revocation = await revokeSigningKey(tdb.database.db, keyring, next.kid);
    expect(revocation).toMatchObject({ revoked: { kid: next.kid, state: 'next' }, replacement: undefined });
    await server.app.providers.refresh();
    expect(await kids()).not.toContain(next.kid);
    await expect(revokeSigningKey(tdb.database.db, keyring, next.kid)).rejects.toThrow(`signing key ${next.kid} has left the JWKS already`);
    await expect(revokeSigningKey(tdb.database.db, keyring, 'no-such-kid')).rejects.toBeInstanceOf(ServiceError);
  });

  it.skipIf(!onPostgres)('postern keys revoke: the running server follows at once, through the change feed', async () => {
    const leaked = await token('ES256');
    const env = { DATABASE_URL: tdb.url, POSTERN_MASTER_KEY: TEST_MASTER_KEY };
    const result = await postern(['keys', 'revoke', leaked.kid], env);
    expect(result.code, describeRun(['keys', 'revoke', leaked.kid], result)).toBe(0);
    expect(result.stdout).toContain(`signing key ${leaked.kid} (ES256, was active) revoked: out of the JWKS now on every server`);
    expect(result.stdout).toMatch(/ES256 tokens are signed from now on with \S+ \(a new key\)/);
    await eventually(async () => !(await kids()).includes(leaked.kid), 'the server dropping the revoked key');
    expect(await active(leaked.token)).toBe(false);
    const refused = await postern(['keys', 'revoke', 'no-such-kid'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('postern: unknown signing key "no-such-kid"\n');
  }, 60_000);
});
