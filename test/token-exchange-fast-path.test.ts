// The token-exchange fast path (src/oidc/exchange-fast-path.ts) against the provider path: two
// servers on one database, one with the fast paths and one with FAST_PATHS=false, are sent the
// same table of exchanges (RFC 8693), good and bad, and must answer alike: status, error JSON, the
// headers that matter, equivalent tokens (claims equal but jti, iat and exp), the same audit
// records and metrics. Then: what the fast path issues is what introspection and revocation know,
// and a revoked subject token or a disabled client is refused at once.
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { updateApi } from '../src/services/apis.ts';
import { createClient, setClientEnabled, updateClient } from '../src/services/clients.ts';
import { assignRoleToClient } from '../src/services/roles.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { auditOf as auditRecordsOf, delta, metricsOf } from './support/differential.ts';
import { ACCESS_TOKEN_TYPE, exchangeWorld, introspectAs, personToken, TOKEN_EXCHANGE, type ExchangeWorld } from './support/exchange.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

interface Credentials { id: string; secret: string; name?: string }

let tdb: TestDatabase;
let fast: TestServer;
let slow: TestServer;
let x: ExchangeWorld;
/** Subject tokens, issued once by the provider path (each server accepts the other's). */
const t: Record<string, string> = {};
/** Clients beyond the exchange world's. */
const c: Record<string, Credentials> = {};
let dpopApi: { identifier: string };
let front2: { identifier: string };

const FORM = 'application/x-www-form-urlencoded';
const basic = (cred: Credentials) => `Basic ${Buffer.from(`${cred.id}:${cred.secret}`).toString('base64')}`;

interface Case {
  name: string;
  /** The exchanging client (Basic unless `post`). */
  as(): Credentials;
  form(): [string, string][];
  post?: boolean;
  headers?: Record<string, string>;
  /** Expected to be answered by the fast path (with FAST_PATHS on). */
  fast?: boolean;
}

const ex = (subject: () => string, extra: () => [string, string][] = () => []) => (): [string, string][] => [
  ['grant_type', TOKEN_EXCHANGE], ['subject_token', subject()], ['subject_token_type', ACCESS_TOKEN_TYPE], ...extra(),
];

function cases(): Case[] {
  const person = () => t.person!;
  const front = () => x.front;
  const payments = (): [string, string][] => [['resource', x.payments.identifier]];
  return [
    { name: 'a person\'s token, resource named', as: front, form: ex(person, payments), fast: true },
    { name: 'a person\'s token, audience named', as: front, form: ex(person, () => [['audience', x.payments.identifier]]), fast: true },
    { name: 'a person\'s token, no target (the one permitted)', as: front, form: ex(person), fast: true },
    { name: 'a person\'s token, a scope asked', as: front, form: ex(person, () => [...payments(), ['scope', 'payments:charge']]), fast: true },
    { name: 'resource and audience naming the same API', as: front, form: ex(person, () => [...payments(), ['audience', x.payments.identifier]]), fast: true },
    { name: 'requested_token_type an access token', as: front, form: ex(person, () => [...payments(), ['requested_token_type', ACCESS_TOKEN_TYPE]]), fast: true },
    { name: 'an empty scope (none asked)', as: front, form: ex(person, () => [...payments(), ['scope', '']]), fast: true },
    { name: 'client_secret_post', as: front, post: true, form: ex(person, payments), fast: true },
    { name: 'content type with charset', as: front, form: ex(person, payments), headers: { 'content-type': `${FORM}; charset=utf-8` }, fast: true },
    { name: 'a service\'s own JWT', as: front, form: ex(() => t.service!, payments), fast: true },
    { name: 'impersonation (no act)', as: () => c.impersonator!, form: ex(() => t.serviceFront2!, payments), fast: true },
    { name: 'a second exchange (nested act, lineage)', as: () => x.paymentsService, form: ex(() => t.exchanged!, () => [['resource', x.archive.identifier]]), fast: true },

    { name: 'a scope the subject does not hold', as: front, form: ex(person, () => [...payments(), ['scope', 'payments:refund']]) },
    { name: 'a scope the API does not define', as: front, form: ex(person, () => [...payments(), ['scope', 'payments:steal']]) },
    { name: 'two spaces between scopes', as: front, form: ex(person, () => [...payments(), ['scope', 'payments:charge  payments:refund']]) },
    { name: 'a target the client may not exchange for', as: front, form: ex(person, () => [['resource', x.ledger.identifier]]) },
    { name: 'an unknown target', as: front, form: ex(person, () => [['resource', 'https://nowhere.internal']]) },
    { name: 'resource and audience differing', as: front, form: ex(person, () => [...payments(), ['audience', x.ledger.identifier]]) },
    { name: 'resource twice', as: front, form: ex(person, () => [...payments(), ...payments()]) },
    { name: 'an opaque-token target', as: () => x.paymentsService, form: ex(() => t.exchanged!, () => [['resource', x.ledger.identifier]]) },
    { name: 'a target requiring DPoP', as: () => c.dpopExchanger!, form: ex(() => t.serviceFront2ForDpop!, () => [['resource', dpopApi.identifier]]) },
    { name: 'a subject token for an API the client does not serve', as: () => x.paymentsService, form: ex(person, () => [['resource', x.ledger.identifier]]) },
    { name: 'a revoked subject token', as: front, form: ex(() => t.revoked!, payments) },
    { name: 'a subject token of a disabled client', as: front, form: ex(() => t.disabledService!, payments) },
    { name: 'a subject token that is not a token', as: front, form: ex(() => 'not-a-token', payments) },
    { name: 'a JWT that is not Postern\'s', as: front, form: ex(() => `${t.person!.split('.').slice(0, 2).join('.')}.AAAA`, payments) },
    { name: 'an opaque subject token', as: () => x.ledgerService, form: ex(() => t.opaque!, () => [['resource', x.archive.identifier]]) },
    { name: 'subject_token_type jwt', as: front, form: () => ex(person, payments)().map(([k, v]) => [k, k === 'subject_token_type' ? 'urn:ietf:params:oauth:token-type:jwt' : v]) },
    { name: 'requested_token_type a refresh token', as: front, form: ex(person, () => [...payments(), ['requested_token_type', 'urn:ietf:params:oauth:token-type:refresh_token']]) },
    { name: 'an actor token', as: front, form: ex(person, () => [...payments(), ['actor_token', t.frontOwn!], ['actor_token_type', ACCESS_TOKEN_TYPE]]) },
    { name: 'no subject_token_type', as: front, form: () => ex(person, payments)().filter(([k]) => k !== 'subject_token_type') },
    { name: 'an unknown parameter', as: front, form: ex(person, () => [...payments(), ['foo', 'bar']]) },
    { name: 'a DPoP header', as: front, form: ex(person, payments), headers: { dpop: 'not.a.proof' } },
    { name: 'a wrong secret', as: () => ({ ...x.front, secret: 'x'.repeat(43) }), form: ex(person, payments) },
    { name: 'a client without an exchange permission', as: () => x.bystander, form: ex(person, payments) },
    { name: 'a disabled exchanging client', as: () => c.disabledExchanger!, form: ex(person, payments) },
    { name: 'an exchanging client limited to other networks', as: () => c.fenced!, form: ex(person, payments) },
  ];
}

interface Answer { status: number; headers: Record<string, string | null>; body: unknown }
const HEADERS = ['cache-control', 'pragma', 'www-authenticate', 'content-type'];

async function send(server: TestServer, k: Case): Promise<Answer> {
  const cred = k.as();
  const form = k.form();
  const headers: Record<string, string> = { 'content-type': FORM, ...(k.post ? {} : { authorization: basic(cred) }), ...k.headers };
  if (k.post) form.push(['client_id', cred.id], ['client_secret', cred.secret]);
  const response = await fetch(`${server.url}/token`, { method: 'POST', headers, body: new URLSearchParams(form).toString() });
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
  const { access_token: token, expires_in: expiresIn, ...rest } = body as { access_token: string; expires_in: number };
  if (token.split('.').length !== 3) return { ...answer, body: { ...rest, opaqueLength: token.length } };
  const { jti, iat, exp, ...claims } = decodeJwt(token);
  expect(typeof jti).toBe('string');
  expect(exp! - iat!).toBe(expiresIn);
  // A lifetime capped by the subject token's shrinks by the second: compare it to the minute.
  return { ...answer, body: { ...rest, header: decodeProtectedHeader(token), claims, lifetime: Math.round(expiresIn / 60), jtiLength: (jti as string).length } };
}

/** The audit records a request left, without times and request ids. */
const auditOf = (server: TestServer, run: () => Promise<void>) => auditRecordsOf(tdb.database.db, [fast, slow], server, run, (row) => ({ target: [row.target_type, row.target_id] }));

const tokenOf = async (server: TestServer, cred: Credentials, resource: string) => {
  const res = await postForm(`${server.url}/token`, { grant_type: 'client_credentials', resource }, cred);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.access_token as string;
};

beforeAll(async () => {
  tdb = await createTestDatabase();
  const db = tdb.database.db;
  slow = await startServer(tdb.database, { RATE_LIMIT_INVALID_CLIENT: '0', FAST_PATHS: 'false' });
  fast = await startServer(tdb.database, { ISSUER: slow.url, RATE_LIMIT_INVALID_CLIENT: '0' });
  x = await exchangeWorld(db);
  // A service holding a role on the front API and on payments: its own token is a subject too.
  const service = await serviceClient(db, [(await role(db, [
    { api: x.world.api.identifier, scopes: ['orders:read'] }, { api: x.payments.identifier, scopes: ['payments:charge'] },
  ])).name]);
  // A second front API whose owner impersonates, and a third whose owner exchanges for an API requiring DPoP.
  front2 = await api(db, { scopes: ['front2:read'] });
  const front3 = await api(db, { scopes: ['front3:read'] });
  dpopApi = await api(db, { scopes: ['d:write'], requireDpop: true });
  const frontRole = await role(db, [
    { api: front2.identifier, scopes: ['front2:read'] }, { api: front3.identifier, scopes: ['front3:read'] },
    { api: dpopApi.identifier, scopes: ['d:write'] },
  ]);
  await assignRoleToClient(db, frontRole.name, service.name, NO_AUDIT);
  c.impersonator = await serviceClient(db);
  await updateApi(db, front2.identifier, { owner: c.impersonator.name! }, NO_AUDIT);
  await updateClient(db, c.impersonator.name!, { mayExchange: [{ api: x.payments.identifier, scopes: ['payments:charge'] }], mayImpersonate: true }, NO_AUDIT);
  c.dpopExchanger = await serviceClient(db);
  await updateApi(db, front3.identifier, { owner: c.dpopExchanger.name! }, NO_AUDIT);
  await updateClient(db, c.dpopExchanger.name!, { mayExchange: [{ api: dpopApi.identifier, scopes: ['d:write'] }] }, NO_AUDIT);
  // The payments service may also exchange for the archive (a second JWT hop).
  await updateClient(db, x.paymentsService.name, {
    mayExchange: [{ api: x.ledger.identifier, scopes: ['ledger:read', 'ledger:write'] }, { api: x.archive.identifier, scopes: ['archive:write'] }],
  }, NO_AUDIT);
  const exchanger = async (name: string, extra: Parameters<typeof createClient>[1] = { name }) => {
    const { client, clientSecret } = await createClient(db, { ...extra, name: unique(name) }, NO_AUDIT);
    await updateClient(db, client.clientId, { mayExchange: [{ api: x.payments.identifier, scopes: ['payments:charge'] }] }, NO_AUDIT);
    return { id: client.clientId, secret: clientSecret!, name: client.name };
  };
  c.disabledExchanger = await exchanger('off');
  await setClientEnabled(db, c.disabledExchanger.id, false, NO_AUDIT);
  c.fenced = await exchanger('fenced', { name: 'fenced', allowedNetworks: ['10.0.0.0/8'] });
  // The bystander's opaque token for the ledger, which the ledger service exchanges for the archive.
  await assignRoleToClient(db, (await role(db, [{ api: x.ledger.identifier, scopes: ['ledger:read'] }, { api: x.archive.identifier, scopes: ['archive:write'] }])).name, x.bystander.name, NO_AUDIT);

  t.person = await personToken(slow.url, x);
  t.revoked = await personToken(slow.url, x);
  expect((await postForm(`${slow.url}/token/revocation`, { token: t.revoked }, x.world.client)).status).toBe(200);
  t.service = await tokenOf(slow, service, x.world.api.identifier);
  t.serviceFront2 = await tokenOf(slow, service, front2.identifier);
  t.serviceFront2ForDpop = await tokenOf(slow, service, front3.identifier);
  const doomed = await serviceClient(db, [(await role(db, [{ api: x.world.api.identifier, scopes: ['orders:read'] }, { api: x.payments.identifier, scopes: ['payments:charge'] }])).name]);
  t.disabledService = await tokenOf(slow, doomed, x.world.api.identifier);
  await setClientEnabled(db, doomed.id, false, NO_AUDIT);
  t.opaque = await tokenOf(slow, x.bystander, x.ledger.identifier);
  await assignRoleToClient(db, x.world.role.name, x.front.name, NO_AUDIT);
  t.frontOwn = await tokenOf(slow, x.front, x.world.api.identifier);
  const first = await postForm(`${slow.url}/token`, {
    grant_type: TOKEN_EXCHANGE, subject_token: t.person, subject_token_type: ACCESS_TOKEN_TYPE, resource: x.payments.identifier,
  }, x.front);
  expect(first.status, JSON.stringify(first.body)).toBe(200);
  t.exchanged = first.body.access_token;
}, 60_000);

afterAll(async () => {
  await fast?.close();
  await slow?.close();
  await tdb?.drop();
});

describe('the token-exchange fast path answers as the provider does', () => {
  it('has a table of at least 35 requests', () => {
    expect(cases().length).toBeGreaterThanOrEqual(35);
  });

  for (const k of cases()) {
    it(k.name, async () => {
      const results = [];
      for (const server of [slow, fast]) {
        const before = await metricsOf(server);
        let answer: Answer | undefined;
        const audit = await auditOf(server, async () => { answer = await send(server, k); });
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
      expect(fastPath!.fast).toBe(k.fast ? 1 : 0);
    });
  }
});

describe('tokens of the exchange fast path', () => {
  const viaFast = async (subject: string) => {
    const res = await postForm(`${fast.url}/token`, {
      grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, resource: x.payments.identifier,
    }, x.front);
    return res;
  };

  it('introspect as the provider\'s do', async () => {
    const mine = (await viaFast(t.person!)).body.access_token as string;
    const theirs = t.exchanged!;
    const strip = ({ jti: _j, iat: _i, exp: _e, ...rest }: Record<string, unknown>) => rest;
    const [a, b] = [(await introspectAs(slow.url, x.front, mine)).body, (await introspectAs(slow.url, x.front, theirs)).body];
    expect(a.active).toBe(true);
    expect(strip(a)).toEqual(strip(b));
  });

  it('end when the subject token is revoked, and the revoked token is refused at once', async () => {
    const subject = await personToken(slow.url, x);
    const exchanged = (await viaFast(subject)).body.access_token as string;
    expect((await introspectAs(fast.url, x.front, exchanged)).body.active).toBe(true);
    expect((await postForm(`${slow.url}/token/revocation`, { token: subject }, x.world.client)).status).toBe(200);
    expect((await introspectAs(fast.url, x.front, exchanged)).body).toEqual({ active: false });
    expect((await viaFast(subject)).body).toMatchObject({ error: 'invalid_grant' });
  });

  it('end when a client of the chain is disabled, and its tokens are refused at once', async () => {
    const subject = await personToken(slow.url, x);
    const exchanged = (await viaFast(subject)).body.access_token as string;
    await updateClient(tdb.database.db, x.world.client.id, { enabled: false }, NO_AUDIT);
    try {
      expect((await introspectAs(fast.url, x.front, exchanged)).body).toEqual({ active: false });
      expect((await viaFast(subject)).body).toMatchObject({ error: 'invalid_grant' });
    } finally {
      await updateClient(tdb.database.db, x.world.client.id, { enabled: true }, NO_AUDIT);
    }
  });

  it('are refused to an exchanging client disabled since', async () => {
    // Past the second of the web app's cut-off above (a token of the same second counts as earlier).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const subject = await personToken(slow.url, x);
    expect((await viaFast(subject)).status).toBe(200);
    await updateClient(tdb.database.db, x.front.name, { enabled: false }, NO_AUDIT);
    try {
      expect((await viaFast(subject)).body).toMatchObject({ error: 'invalid_client' });
    } finally {
      await updateClient(tdb.database.db, x.front.name, { enabled: true }, NO_AUDIT);
    }
    const again = await viaFast(subject);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
  });
});
