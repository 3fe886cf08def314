// The introspection fast path (src/oidc/introspection-fast-path.ts, opaque-introspection.ts)
// against the provider: two servers on one database, one with the fast paths and one with
// FAST_PATHS=false, are sent the same table of introspection requests (JWT and opaque tokens,
// good and bad) and must answer alike: status, the headers that matter, the same JSON. Then: a
// service's opaque token that one process remembers is inactive there as soon as another process
// revokes it, disables its client or cuts its tokens off.
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { createClient, setClientEnabled } from '../src/services/clients.ts';
import { revokeClientTokens } from '../src/services/tokens.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let fast: TestServer;
let slow: TestServer;

interface Credentials { id: string; secret: string }
let files: Credentials; // holds opaque tokens of the files API
let billing: Credentials; // holds JWTs of the orders API
let fenced: Credentials;
let boundHolder: Credentials;
const tokens: Record<string, string> = {};

const FORM = 'application/x-www-form-urlencoded';
const basic = (c: Credentials) => `Basic ${Buffer.from(`${c.id}:${c.secret}`).toString('base64')}`;
const form = (values: [string, string][]) => new URLSearchParams(values).toString();

interface Case {
  name: string;
  body: () => string;
  headers: () => Record<string, string>;
  /** Expected to be answered by the fast path (with FAST_PATHS on). */
  fast?: boolean;
}

const as = (c: () => Credentials, extra: Record<string, string> = {}) => () => ({ 'content-type': FORM, authorization: basic(c()), ...extra });
const ask = (name: string, extra: [string, string][] = []) => () => form([['token', tokens[name]!], ...extra]);

function cases(): Case[] {
  const f = as(() => files);
  return [
    { name: 'a JWT, by its client', body: ask('jwt'), headers: as(() => billing), fast: true },
    { name: 'an opaque token, by its client', body: ask('opaque'), headers: f, fast: true },
    { name: 'an opaque token, credentials in the body', body: () => form([['token', tokens.opaque!], ['client_id', files.id], ['client_secret', files.secret]]), headers: () => ({ 'content-type': FORM }), fast: true },
    { name: 'an opaque token, hint access_token', body: ask('opaque', [['token_type_hint', 'access_token']]), headers: f, fast: true },
    { name: 'an opaque token, hint refresh_token', body: ask('opaque', [['token_type_hint', 'refresh_token']]), headers: f },
    { name: 'an opaque token, unknown hint', body: ask('opaque', [['token_type_hint', 'foo']]), headers: f },
    { name: 'an opaque token, by a client with no say over it', body: ask('opaque'), headers: as(() => billing), fast: true },
    { name: 'a DPoP-bound opaque token', body: ask('bound'), headers: as(() => boundHolder), fast: true },
    { name: 'an opaque token of a disabled client', body: ask('ofDisabled'), headers: as(() => billing) },
    { name: 'a revoked opaque token', body: ask('revoked'), headers: f },
    { name: 'an unknown opaque value', body: () => form([['token', 'A'.repeat(43)]]), headers: f },
    { name: 'a short value', body: () => form([['token', 'abc']]), headers: f },
    { name: 'a value with other characters', body: () => form([['token', `${tokens.opaque}!`]]), headers: f },
    { name: 'an opaque token, wrong secret', body: ask('opaque'), headers: as(() => ({ ...files, secret: 'x'.repeat(43) })) },
    { name: 'an opaque token, no authentication', body: ask('opaque'), headers: () => ({ 'content-type': FORM }) },
    { name: 'an opaque token twice', body: () => form([['token', tokens.opaque!], ['token', tokens.opaque!]]), headers: f },
    { name: 'an opaque token and an unknown parameter', body: ask('opaque', [['foo', 'bar']]), headers: f },
    { name: 'an opaque token with a DPoP header', body: ask('opaque'), headers: as(() => files, { dpop: 'not.a.proof' }) },
    { name: 'an opaque token, by a client limited to some networks', body: ask('opaque'), headers: as(() => fenced) },
    { name: 'no token', body: () => form([['token_type_hint', 'access_token']]), headers: f },
  ];
}

const HEADERS = ['cache-control', 'pragma', 'www-authenticate', 'content-type'];

async function send(server: TestServer, c: Case) {
  const response = await fetch(`${server.url}/token/introspection`, { method: 'POST', headers: c.headers(), body: c.body() });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: response.status, headers: Object.fromEntries(HEADERS.map((h) => [h, response.headers.get(h)])), body };
}

async function fastAnswers(server: TestServer): Promise<number> {
  const values = (await server.app.metrics.fastPathAnswers.get()).values;
  return values.find((v) => v.labels.endpoint === 'introspection')?.value ?? 0;
}

async function issue(server: TestServer, c: Credentials, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(`${server.url}/token`, {
    method: 'POST', headers: { 'content-type': FORM, authorization: basic(c), ...headers }, body: 'grant_type=client_credentials',
  });
  const body = await response.json() as { access_token?: string };
  expect(response.status, JSON.stringify(body)).toBe(200);
  return body.access_token!;
}

async function proof(key: { privateKey: CryptoKey; publicJwk: JWK }, htu: string, nonce?: string) {
  return new SignJWT({ htm: 'POST', htu, jti: randomUUID(), ...(nonce ? { nonce } : {}) })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk })
    .setIssuedAt()
    .sign(key.privateKey);
}

const introspect = async (server: TestServer, token: string, caller: Credentials) =>
  (await postForm(`${server.url}/token/introspection`, { token }, caller)).body as Record<string, unknown>;

beforeAll(async () => {
  tdb = await createTestDatabase();
  const db = tdb.database.db;
  const ordersApi = await api(db, { scopes: ['orders:read'] });
  const filesApi = await api(db, { scopes: ['files:read', 'files:write'], tokenFormat: 'opaque' });
  const boundApi = await api(db, { scopes: ['vault:read'], tokenFormat: 'opaque', requireDpop: true });
  const filesRole = await role(db, [{ api: filesApi.identifier, scopes: ['files:read', 'files:write'] }]);
  files = await serviceClient(db, [filesRole.name]);
  billing = await serviceClient(db, [(await role(db, [{ api: ordersApi.identifier, scopes: ['orders:read'] }])).name]);
  boundHolder = await serviceClient(db, [(await role(db, [{ api: boundApi.identifier, scopes: ['vault:read'] }])).name]);
  const disabled = await serviceClient(db, [filesRole.name]);
  const { client, clientSecret } = await createClient(db, { name: unique('fenced'), roles: [filesRole.name], allowedNetworks: ['10.0.0.0/8'] }, NO_AUDIT);
  fenced = { id: client.clientId, secret: clientSecret! };
  const env = { ISSUER: 'http://127.0.0.1:3998' };
  fast = await startServer(tdb.database, env);
  slow = await startServer(tdb.database, { ...env, FAST_PATHS: 'false' });

  tokens.jwt = await issue(slow, billing);
  tokens.opaque = await issue(slow, files);
  tokens.revoked = await issue(slow, files);
  expect((await postForm(`${slow.url}/token/revocation`, { token: tokens.revoked }, files)).status).toBe(200);
  tokens.ofDisabled = await issue(slow, disabled);
  await setClientEnabled(db, disabled.id, false, NO_AUDIT);
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const key = { privateKey, publicJwk: await exportJWK(publicKey) };
  // The first proof learns the server's nonce (RFC 9449 §8).
  const first = await fetch(`${slow.url}/token`, {
    method: 'POST', headers: { 'content-type': FORM, authorization: basic(boundHolder), dpop: await proof(key, `${slow.config.issuer}/token`) },
    body: 'grant_type=client_credentials',
  });
  const nonce = first.headers.get('dpop-nonce') ?? undefined;
  tokens.bound = await issue(slow, boundHolder, { dpop: await proof(key, `${slow.config.issuer}/token`, nonce) });
});

afterAll(async () => {
  await fast?.close();
  await slow?.close();
  await tdb?.drop();
});

describe('the introspection fast path answers as the provider does', () => {
  for (const c of cases()) {
    it(c.name, async () => {
      const [provider, before] = [await send(slow, c), await fastAnswers(fast)];
      const fastPath = await send(fast, c);
      expect(fastPath).toEqual(provider);
      expect(await fastAnswers(fast) - before).toBe(c.fast ? 1 : 0);
    });
  }

  it('answers an opaque token with what the provider says of it', async () => {
    const answer = await introspect(fast, tokens.opaque!, files);
    expect(answer).toMatchObject({ active: true, client_id: files.id, sub: files.id, scope: 'files:read files:write', token_type: 'Bearer' });
    expect(answer).not.toHaveProperty('jti');
    const bound = await introspect(fast, tokens.bound!, boundHolder);
    expect(bound).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: expect.any(String) } });
  });
});

describe('a remembered opaque token', () => {
  const remembered = async () => {
    const token = await issue(slow, files);
    const before = await fastAnswers(fast);
    expect((await introspect(fast, token, files)).active).toBe(true);
    expect((await introspect(fast, token, files)).active).toBe(true);
    expect(await fastAnswers(fast) - before).toBe(2);
    return token;
  };

  it('is inactive at once after another process revokes it', async () => {
    const token = await remembered();
    expect((await postForm(`${slow.url}/token/revocation`, { token }, files)).status).toBe(200);
    expect((await introspect(fast, token, files)).active).toBe(false);
  });

  it('is inactive at once when its client is disabled, and stays so when it is enabled again', async () => {
    const token = await remembered();
    await setClientEnabled(tdb.database.db, files.id, false, NO_AUDIT);
    expect((await introspect(fast, token, billing)).active).toBe(false);
    await setClientEnabled(tdb.database.db, files.id, true, NO_AUDIT);
    expect((await introspect(fast, token, files)).active).toBe(false);
  });

  it('is inactive at once when its client\'s tokens are cut off', async () => {
    await new Promise((resolve) => setTimeout(resolve, 1100)); // past the last cut-off's second
    const token = await remembered();
    await revokeClientTokens(tdb.database.db, files.id, NO_AUDIT);
    expect((await introspect(fast, token, files)).active).toBe(false);
  });
});
