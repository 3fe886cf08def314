// The client-credentials fast path (src/oidc/client-credentials-fast-path.ts) against the
// provider: two servers on one database, one with the fast paths and one with FAST_PATHS=false,
// are sent the same table of requests, good and bad, and must answer alike: status, error JSON,
// the headers that matter, equivalent tokens (claims equal but jti, iat and exp), and the same
// audit records and metrics. Then: what the fast path issues is what introspection, revocation and
// the client's cut-off know.
import { createClient } from '../src/services/clients.ts';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { setClientEnabled } from '../src/services/clients.ts';
import { revokeClientTokens } from '../src/services/tokens.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { auditOf as auditRecordsOf, delta, metricsOf } from './support/differential.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let fast: TestServer;
let slow: TestServer;

interface Credentials { id: string; secret: string }
let billing: Credentials;
let poster: Credentials;
let multi: Credentials;
let disabled: Credentials;
let fenced: Credentials;
let opaqueUser: Credentials;
let edUser: Credentials;
let psUser: Credentials;
let dpopUser: Credentials;
let limited: Credentials;
let roleless: Credentials;
let orders: { identifier: string };
let payments: { identifier: string };

const basic = (c: Credentials, scheme = 'Basic') => `${scheme} ${Buffer.from(`${c.id}:${c.secret}`).toString('base64')}`;
const FORM = 'application/x-www-form-urlencoded';

interface Case {
  name: string;
  body: string | (() => string);
  headers?: () => Record<string, string>;
  method?: string;
  /** Expected to be answered by the fast path (with FAST_PATHS on). */
  fast?: boolean;
}

const form = (values: [string, string][]) => new URLSearchParams(values).toString();
const cc = (extra: [string, string][] = []) => form([['grant_type', 'client_credentials'], ...extra]);
const asBasic = (c: () => Credentials) => () => ({ 'content-type': FORM, authorization: basic(c()) });
const asForm = () => ({ 'content-type': FORM });
const post = (c: Credentials, extra: [string, string][] = []) =>
  cc([['client_id', c.id], ['client_secret', c.secret], ...extra]);

function cases(): Case[] {
  const b = asBasic(() => billing);
  return [
    { name: 'basic, nothing asked', body: cc(), headers: b, fast: true },
    { name: 'basic, one scope', body: () => cc([['scope', 'orders:read']]), headers: b, fast: true },
    { name: 'basic, two scopes', body: () => cc([['scope', 'orders:read orders:write']]), headers: b, fast: true },
    { name: 'basic, two scopes reversed', body: () => cc([['scope', 'orders:write orders:read']]), headers: b, fast: true },
    { name: 'basic, a scope twice', body: () => cc([['scope', 'orders:read orders:read']]), headers: b, fast: true },
    { name: 'basic, resource named', body: () => cc([['resource', orders.identifier]]), headers: b, fast: true },
    { name: 'basic, resource and scope', body: () => cc([['resource', orders.identifier], ['scope', 'orders:write']]), headers: b, fast: true },
    { name: 'basic, empty scope', body: () => cc([['scope', '']]), headers: b, fast: true },
    { name: 'basic, lower-case scheme', body: cc(), headers: () => ({ 'content-type': FORM, authorization: basic(billing, 'basic') }), fast: true },
    { name: 'content type with charset', body: cc(), headers: () => ({ 'content-type': `${FORM}; charset=utf-8`, authorization: basic(billing) }), fast: true },
    { name: 'content type in capitals', body: cc(), headers: () => ({ 'content-type': 'Application/X-WWW-Form-Urlencoded', authorization: basic(billing) }), fast: true },
    { name: 'post auth by a post client', body: () => post(poster), headers: asForm, fast: true },
    { name: 'post auth by a post client, scope', body: () => post(poster, [['scope', 'orders:read']]), headers: asForm, fast: true },
    { name: 'EdDSA API', body: cc(), headers: asBasic(() => edUser), fast: true },
    { name: 'multi-API client naming one', body: () => cc([['resource', payments.identifier]]), headers: asBasic(() => multi), fast: true },
    { name: 'rate-limited client, first', body: cc(), headers: asBasic(() => limited), fast: true },
    { name: 'rate-limited client, second', body: cc(), headers: asBasic(() => limited), fast: true },
    { name: 'rate-limited client, third (429)', body: cc(), headers: asBasic(() => limited) },
    { name: 'post auth by a basic client', body: () => post(billing), headers: asForm, fast: true },
    { name: 'basic auth by a post client', body: cc(), headers: asBasic(() => poster), fast: true },
    { name: 'wrong secret, basic', body: cc(), headers: asBasic(() => ({ ...billing, secret: 'x'.repeat(43) })) },
    { name: 'wrong secret, post', body: () => post({ ...poster, secret: 'y'.repeat(43) }), headers: asForm },
    { name: 'empty secret in the body', body: () => cc([['client_id', poster.id], ['client_secret', '']]), headers: asForm },
    { name: 'unknown client id', body: cc(), headers: asBasic(() => ({ id: 'A'.repeat(22), secret: billing.secret })) },
    { name: 'client id of no generated shape', body: cc(), headers: asBasic(() => ({ id: 'billing', secret: billing.secret })) },
    { name: 'no authentication', body: cc(), headers: asForm },
    { name: 'Basic without a colon', body: cc(), headers: () => ({ 'content-type': FORM, authorization: `Basic ${Buffer.from(billing.id).toString('base64')}` }) },
    { name: 'Basic and body credentials', body: () => post(billing), headers: b },
    { name: 'unknown scope', body: () => cc([['scope', 'orders:nope']]), headers: b },
    { name: 'scope defined, not granted', body: () => cc([['scope', 'orders:read orders:admin']]), headers: b },
    { name: 'an OpenID scope', body: () => cc([['scope', 'openid']]), headers: b },
    { name: 'an API scope and an OpenID one', body: () => cc([['scope', 'orders:read openid']]), headers: b },
    { name: 'two spaces between scopes', body: () => cc([['scope', 'orders:read  orders:write']]), headers: b },
    { name: 'leading space in scope', body: () => cc([['scope', ' orders:read']]), headers: b },
    { name: 'tab in scope', body: () => cc([['scope', 'orders:read\torders:write']]), headers: b },
    { name: 'unicode scope', body: () => cc([['scope', 'ordérs:read']]), headers: b },
    { name: 'unknown resource', body: () => cc([['resource', 'https://nowhere.internal']]), headers: b },
    { name: 'resource not absolute', body: () => cc([['resource', 'orders']]), headers: b },
    { name: 'resource with a fragment', body: () => cc([['resource', `${orders.identifier}#x`]]), headers: b },
    { name: 'empty resource', body: () => cc([['resource', '']]), headers: b },
    { name: 'resource twice', body: () => cc([['resource', orders.identifier], ['resource', orders.identifier]]), headers: b },
    { name: 'grant_type twice', body: () => form([['grant_type', 'client_credentials'], ['grant_type', 'client_credentials']]), headers: b },
    { name: 'scope twice', body: () => cc([['scope', 'orders:read'], ['scope', 'orders:read']]), headers: b },
    { name: 'no grant_type', body: () => form([['scope', 'orders:read']]), headers: b },
    { name: 'grant_type password', body: () => form([['grant_type', 'password']]), headers: b },
    { name: 'grant_type in capitals', body: () => form([['grant_type', 'CLIENT_CREDENTIALS']]), headers: b },
    { name: 'an unknown parameter', body: () => cc([['foo', 'bar']]), headers: b },
    { name: 'authorization_details', body: () => cc([['authorization_details', '[]']]), headers: b },
    { name: 'text/plain body', body: cc(), headers: () => ({ 'content-type': 'text/plain', authorization: basic(billing) }) },
    { name: 'JSON body', body: '{"grant_type":"client_credentials"}', headers: () => ({ 'content-type': 'application/json', authorization: basic(billing) }) },
    { name: 'no content type', body: cc(), headers: () => ({ authorization: basic(billing) }) },
    { name: 'empty body', body: '', headers: b },
    { name: 'malformed percent-encoding', body: 'grant_type=client_credentials&scope=%ZZ', headers: b },
    { name: 'NUL byte', body: 'grant_type=client_credentials&scope=a%00b', headers: b },
    { name: 'over-long scope', body: () => cc([['scope', 'a'.repeat(3000)]]), headers: b },
    { name: 'oversized body', body: () => cc([['pad', 'p'.repeat(70_000)]]), headers: b },
    { name: 'GET', body: '', method: 'GET', headers: b },
    { name: 'disabled client', body: cc(), headers: asBasic(() => disabled) },
    { name: 'client limited to other networks', body: cc(), headers: asBasic(() => fenced) },
    { name: 'multi-API client naming none', body: cc(), headers: asBasic(() => multi) },
    { name: 'client without roles', body: cc(), headers: asBasic(() => roleless) },
    { name: 'opaque-token API', body: cc(), headers: asBasic(() => opaqueUser) },
    { name: 'PS256 API', body: cc(), headers: asBasic(() => psUser) },
    { name: 'API requiring DPoP', body: cc(), headers: asBasic(() => dpopUser) },
    { name: 'a DPoP header', body: cc(), headers: () => ({ 'content-type': FORM, authorization: basic(billing), dpop: 'not.a.proof' }) },
    { name: 'a client certificate header from no trusted proxy', body: cc(), headers: () => ({ 'content-type': FORM, authorization: basic(billing), 'x-client-cert': 'junk' }), fast: true },
  ];
}

interface Answer {
  status: number;
  headers: Record<string, string | null>;
  body: unknown;
}

const HEADERS = ['cache-control', 'pragma', 'www-authenticate', 'content-type', 'retry-after'];

async function send(server: TestServer, c: Case): Promise<Answer> {
  const body = typeof c.body === 'function' ? c.body() : c.body;
  const response = await fetch(`${server.url}/token`, {
    method: c.method ?? 'POST', headers: c.headers?.() ?? {}, ...(c.method === 'GET' ? {} : { body }),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: response.status, headers: Object.fromEntries(HEADERS.map((h) => [h, response.headers.get(h)])), body: parsed };
}

/** A token response with what legitimately differs taken out: the token's id and times. */
function comparable(answer: Answer) {
  const body = answer.body as { access_token?: string } | undefined;
  if (answer.status !== 200 || typeof body?.access_token !== 'string') return answer;
  const { access_token: token, ...rest } = body;
  if (token.split('.').length !== 3) return { ...answer, body: { ...rest, opaqueLength: token.length } };
  const { jti, iat, exp, ...claims } = decodeJwt(token);
  expect(typeof jti).toBe('string');
  return { ...answer, body: { ...rest, header: decodeProtectedHeader(token), claims, lifetime: exp! - iat!, jtiLength: (jti as string).length } };
}

/** The audit records a request left, without times and request ids. */
const auditOf = (server: TestServer, run: () => Promise<void>) => auditRecordsOf(tdb.database.db, [server], server, run, (row) => ({ source: row.source_address }));

beforeAll(async () => {
  tdb = await createTestDatabase();
  const db = tdb.database.db;
  const ordersApi = await api(db, { scopes: ['orders:read', 'orders:write', 'orders:admin'] });
  const paymentsApi = await api(db, { scopes: ['payments:read'] });
  const opaqueApi = await api(db, { scopes: ['files:read'], tokenFormat: 'opaque' });
  const edApi = await api(db, { scopes: ['ed:read'], signingAlg: 'EdDSA' });
  const psApi = await api(db, { scopes: ['ps:read'], signingAlg: 'PS256' });
  const dpopApi = await api(db, { scopes: ['d:read'], requireDpop: true });
  orders = ordersApi;
  payments = paymentsApi;
  const reader = await role(db, [{ api: ordersApi.identifier, scopes: ['orders:read', 'orders:write'] }]);
  const payer = await role(db, [{ api: paymentsApi.identifier, scopes: ['payments:read'] }]);
  billing = await serviceClient(db, [reader.name]);
  multi = await serviceClient(db, [reader.name, payer.name]);
  disabled = await serviceClient(db, [reader.name]);
  await setClientEnabled(db, disabled.id, false, NO_AUDIT);
  limited = await serviceClient(db, [reader.name]);
  roleless = await serviceClient(db, []);
  opaqueUser = await serviceClient(db, [(await role(db, [{ api: opaqueApi.identifier, scopes: ['files:read'] }])).name]);
  edUser = await serviceClient(db, [(await role(db, [{ api: edApi.identifier, scopes: ['ed:read'] }])).name]);
  psUser = await serviceClient(db, [(await role(db, [{ api: psApi.identifier, scopes: ['ps:read'] }])).name]);
  dpopUser = await serviceClient(db, [(await role(db, [{ api: dpopApi.identifier, scopes: ['d:read'] }])).name]);
  const created = async (input: Parameters<typeof createClient>[1]) => {
    const { client, clientSecret } = await createClient(db, input, NO_AUDIT);
    return { id: client.clientId, secret: clientSecret! };
  };
  poster = await created({ name: unique('post'), roles: [reader.name], tokenEndpointAuthMethod: 'client_secret_post' });
  fenced = await created({ name: unique('fenced'), roles: [reader.name], allowedNetworks: ['10.0.0.0/8'] });
  const env = { ISSUER: 'http://127.0.0.1:3999', RATE_LIMIT_CLIENT_OVERRIDES: `${limited.id}=2`, TLS_CLIENT_CERT_HEADER: 'x-client-cert', TLS_CLIENT_CERT_PROXIES: '192.0.2.1/32' };
  fast = await startServer(tdb.database, env);
  slow = await startServer(tdb.database, { ...env, FAST_PATHS: 'false' });
});

afterAll(async () => {
  await fast?.close();
  await slow?.close();
  await tdb?.drop();
});

describe('the client-credentials fast path answers as the provider does', () => {
  it('has a table of at least 50 requests', () => {
    expect(cases().length).toBeGreaterThanOrEqual(50);
  });

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
          metrics: { issued: delta(after.issued, before.issued), errors: delta(after.errors, before.errors), limited: delta(after.limited, before.limited) },
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

describe('tokens of the fast path', () => {
  const issue = async (server: TestServer, c: Credentials = billing) => {
    const res = await postForm(`${server.url}/token`, { grant_type: 'client_credentials' }, c);
    expect(res.status).toBe(200);
    return res.body.access_token as string;
  };
  const introspect = async (token: string) =>
    (await postForm(`${slow.url}/token/introspection`, { token }, billing)).body as { active: boolean };

  it('verify against the JWKS with the key the provider signs with', async () => {
    const [mine, theirs] = [await issue(fast), await issue(slow)];
    expect(decodeProtectedHeader(mine)).toEqual(decodeProtectedHeader(theirs));
    const jwks = (await (await fetch(`${slow.url}/jwks`)).json()) as never;
    await jwtVerify(mine, createLocalJWKSet(jwks), { issuer: fast.config.issuer, audience: orders.identifier, typ: 'at+jwt' });
  });

  it('introspect as the provider\'s do and are revoked like them', async () => {
    const mine = await issue(fast);
    const theirs = await issue(slow);
    const [a, b] = [await introspect(mine), await introspect(theirs)];
    const strip = ({ jti: _j, iat: _i, exp: _e, ...rest }: Record<string, unknown>) => rest;
    expect(a.active).toBe(true);
    expect(strip(a)).toEqual(strip(b));
    const revoked = await postForm(`${fast.url}/token/revocation`, { token: mine }, billing);
    expect(revoked.status).toBe(200);
    expect((await introspect(mine)).active).toBe(false);
    expect((await introspect(theirs)).active).toBe(true);
  });

  it('fall under the client\'s cut-off', async () => {
    const mine = await issue(fast);
    await revokeClientTokens(tdb.database.db, billing.id, NO_AUDIT);
    expect((await introspect(mine)).active).toBe(false);
    // A token of the same second as the cut-off counts as earlier (token-policy.ts).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const later = await issue(fast);
    expect((await introspect(later)).active).toBe(true);
  });
});
