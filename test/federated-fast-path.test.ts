// Federated client credentials on the client-credentials fast path: a platform token verified in
// front of the provider (src/oidc/federated-client-auth.ts) and then answered by
// src/oidc/client-credentials-fast-path.ts. Two servers on one database, one with the fast paths
// and one with FAST_PATHS=false, are sent the same requests, good and bad, each with a platform
// token of its own, and must answer alike: status, error JSON, the headers that matter, equivalent
// tokens (claims equal but jti, iat and exp), the same audit records and metrics. Single use of a
// jti holds across both (one database).
import { decodeJwt, decodeProtectedHeader, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { createClient, setClientEnabled } from '../src/services/clients.ts';
import { createIssuer } from '../src/services/trusted-issuers.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { auditOf as auditRecordsOf, delta, metricsOf } from './support/differential.ts';
import { api, role, unique } from './support/fixtures.ts';
import { kubernetesClaims, startLocalIssuer, type LocalIssuer } from './support/local-issuer.ts';
import { startServer, type TestServer } from './support/server.ts';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const FORM = 'application/x-www-form-urlencoded';

let tdb: TestDatabase;
let fast: TestServer;
let slow: TestServer;
let k8s: LocalIssuer;
let orders: { identifier: string };
let opaque: { identifier: string };
const ids: Record<string, string> = {};

/** A platform token of service account `account` for `server`. */
const platformToken = (server: TestServer, account = 'orders', overrides: JWTPayload = {}) =>
  k8s.sign({ ...kubernetesClaims(k8s.url, server.config.issuer, 'shop', account), ...overrides });

interface Case {
  name: string;
  /** The form, built for each server (each gets a platform token of its own). */
  body(server: TestServer): Promise<[string, string][]>;
  headers?: Record<string, string>;
  /** Expected to be answered by the fast path (with FAST_PATHS on). */
  fast?: boolean;
}

const asserted = (assertion: string, extra: [string, string][] = [], grant = 'client_credentials'): [string, string][] => [
  ['grant_type', grant], ...extra, ['client_assertion_type', ASSERTION_TYPE], ['client_assertion', assertion],
];

function cases(): Case[] {
  type Extra = [string, string][] | (() => [string, string][]);
  const good = (extra: Extra = [], account = 'orders') =>
    async (server: TestServer) => asserted(await platformToken(server, account), typeof extra === 'function' ? extra() : extra);
  return [
    { name: 'resource and scope', body: good(() => [['resource', orders.identifier], ['scope', 'orders:read']]), fast: true },
    { name: 'nothing asked (the only API, every granted scope)', body: good(), fast: true },
    { name: 'two scopes', body: good([['scope', 'orders:read orders:write']]), fast: true },
    { name: 'client_id naming the bound client', body: async (s) => asserted(await platformToken(s), [['client_id', ids.orders!]]), fast: true },
    { name: 'the token endpoint as audience', body: async (s) => asserted(await platformToken(s, 'orders', { aud: [`${s.config.issuer}/token`] })), fast: true },
    { name: 'a token without jti, reusable', body: async (s) => asserted(await platformToken(s, 'orders', { jti: undefined })), fast: true },
    {
      name: 'a token used before (on the other server)',
      body: async (s) => {
        const token = await platformToken(s);
        const other = s === fast ? slow : fast;
        const used = await send(other, { name: '', body: async () => asserted(token) });
        expect(used.status).toBe(200);
        // Its count is recorded now, in both runs alike, rather than whenever the other flushes.
        await other.app.audit.flush({ counts: true });
        return asserted(token);
      },
    },
    { name: 'scope not granted', body: good([['scope', 'orders:admin']]) },
    { name: 'unknown scope', body: good([['scope', 'nope:nope']]) },
    { name: 'an OpenID scope', body: good([['scope', 'openid']]) },
    { name: 'unknown resource', body: good([['resource', 'https://nowhere.internal']]) },
    { name: 'an unknown parameter', body: good([['foo', 'bar']]) },
    { name: 'a DPoP header', body: good(), headers: { dpop: 'not.a.proof' } },
    { name: 'client_id naming another client', body: async (s) => asserted(await platformToken(s), [['client_id', ids.opaque!]]) },
    { name: 'an expired token', body: async (s) => asserted(await platformToken(s, 'orders', { exp: Math.floor(Date.now() / 1000) - 120 })) },
    { name: 'another audience', body: async (s) => asserted(await platformToken(s, 'orders', { aud: ['https://elsewhere.internal'] })) },
    { name: 'a subject bound to no client', body: good([], 'nobody') },
    { name: 'a disabled client', body: good([], 'disabled') },
    { name: 'a client limited to other networks', body: good([], 'fenced') },
    { name: 'a client of an opaque-token API', body: good([], 'opaque') },
    { name: 'a token signed by a stranger', body: async (s) => asserted(await k8s.sign(kubernetesClaims(k8s.url, s.config.issuer, 'shop', 'orders'), { key: await k8s.strangerKey() })) },
    { name: 'the assertion and a client secret', body: good([['client_secret', 'x'.repeat(43)]]) },
    { name: 'grant_type password', body: async (s) => asserted(await platformToken(s), [], 'password') },
  ];
}

interface Answer { status: number; headers: Record<string, string | null>; body: unknown }
const HEADERS = ['cache-control', 'pragma', 'www-authenticate', 'content-type'];

async function send(server: TestServer, c: Case): Promise<Answer> {
  const body = new URLSearchParams(await c.body(server)).toString();
  const response = await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': FORM, ...c.headers }, body });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  if (response.status >= 500) throw new Error(`server error: ${text}`);
  return { status: response.status, headers: Object.fromEntries(HEADERS.map((h) => [h, response.headers.get(h)])), body: parsed };
}

function comparable(answer: Answer) {
  const body = answer.body as { access_token?: string } | undefined;
  if (answer.status !== 200 || typeof body?.access_token !== 'string') return answer;
  const { access_token: token, ...rest } = body;
  if (token.split('.').length !== 3) return { ...answer, body: { ...rest, opaqueLength: token.length } };
  const { jti, iat, exp, ...claims } = decodeJwt(token);
  expect(typeof jti).toBe('string');
  return { ...answer, body: { ...rest, header: decodeProtectedHeader(token), claims, lifetime: exp! - iat! } };
}

/** The audit records a request left, without times and request ids. */
const auditOf = (server: TestServer, run: () => Promise<void>) => auditRecordsOf(tdb.database.db, [fast, slow], server, run);

beforeAll(async () => {
  tdb = await createTestDatabase();
  const db = tdb.database.db;
  k8s = await startLocalIssuer({ alg: 'ES256' });
  const ordersApi = await api(db, { scopes: ['orders:read', 'orders:write', 'orders:admin'] });
  const opaqueApi = await api(db, { scopes: ['files:read'], tokenFormat: 'opaque' });
  orders = ordersApi;
  opaque = opaqueApi;
  const reader = await role(db, [{ api: ordersApi.identifier, scopes: ['orders:read', 'orders:write'] }]);
  const filer = await role(db, [{ api: opaqueApi.identifier, scopes: ['files:read'] }]);
  const issuer = unique('k8s');
  await createIssuer(db, { name: issuer, issuer: k8s.url, kind: 'kubernetes', discovery: true }, { development: true }, NO_AUDIT);
  const bound = async (account: string, roles: string[], extra: { allowedNetworks?: string[] } = {}) => {
    const { client } = await createClient(db, {
      name: unique(account), roles, federated: { issuer, subject: `system:serviceaccount:shop:${account}` }, ...extra,
    }, NO_AUDIT);
    ids[account] = client.clientId;
  };
  await bound('orders', [reader.name]);
  await bound('disabled', [reader.name]);
  await setClientEnabled(db, ids.disabled!, false, NO_AUDIT);
  await bound('fenced', [reader.name], { allowedNetworks: ['10.0.0.0/8'] });
  await bound('opaque', [filer.name]);
  const env = { ISSUER: 'http://127.0.0.1:3999', RATE_LIMIT_INVALID_CLIENT: '0' };
  fast = await startServer(tdb.database, env);
  slow = await startServer(tdb.database, { ...env, FAST_PATHS: 'false' });
});

afterAll(async () => {
  await fast?.close();
  await slow?.close();
  await k8s?.close();
  await tdb?.drop();
});

describe('federated client credentials on the fast path answer as the provider does', () => {
  for (const c of cases()) {
    it(c.name, async () => {
      const results = [];
      for (const server of [slow, fast]) {
        const before = await metricsOf(server);
        let answer: Answer | undefined;
        const audit = await auditOf(server, async () => { answer = await send(server, c); });
        const after = await metricsOf(server);
        results.push({
          answer: comparable(answer!),
          audit,
          metrics: { issued: delta(after.issued, before.issued), errors: delta(after.errors, before.errors) },
          fast: after.fast - before.fast,
        });
      }
      const [provider, fastPath] = results;
      expect(fastPath!.answer).toEqual(provider!.answer);
      expect(fastPath!.audit).toEqual(provider!.audit);
      expect(fastPath!.metrics).toEqual(provider!.metrics);
      expect(provider!.fast).toBe(0);
      expect(fastPath!.fast).toBe(c.fast ? 1 : 0);
    });
  }
});

describe('single use of a platform token\'s jti on the fast path', () => {
  it('holds across both servers and within one', async () => {
    const token = await platformToken(fast);
    const c: Case = { name: '', body: async () => asserted(token) };
    expect((await send(fast, c)).status).toBe(200);
    expect(await send(fast, c)).toMatchObject({ status: 401, body: { error: 'invalid_client', error_description: expect.stringMatching(/used before/) } });
    expect(await send(slow, c)).toMatchObject({ status: 401, body: { error: 'invalid_client', error_description: expect.stringMatching(/used before/) } });
  });

  it('lets exactly one of many parallel uses through', async () => {
    const token = await platformToken(fast);
    const c: Case = { name: '', body: async () => asserted(token) };
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => send(i % 2 ? fast : slow, c)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 401)).toHaveLength(11);
  });
});
