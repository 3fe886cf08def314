// Token exchange (RFC 8693) driven by a certified client library (oauth4webapi's generic token
// endpoint request), by Python's Authlib (its requests-based OAuth2Session, when Debian's
// python3-authlib is installed) and by raw HTTP for every refusal: who may exchange what, the scopes and
// lifetime of the new token, delegation (`act`, nested along a chain) and impersonation, and
// revocation following the chain.
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { updateClient } from '../src/services/clients.ts';
import { assignRoleToClient } from '../src/services/roles.ts';
import { role } from './support/fixtures.ts';
import { exchangeCode, refresh, signIn } from './support/sign-in.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { ACCESS_TOKEN_TYPE, exchange, exchangeWorld, introspectAs, personToken, TOKEN_EXCHANGE, type ExchangeWorld } from './support/exchange.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

const insecure = { [oauth.allowInsecureRequests]: true } as const;

/**
 * A Python that has Authlib and requests: Debian's first (python3-authlib installs for it),
 * then whichever python3 comes first on PATH. Undefined when there is none.
 */
const python = ['/usr/bin/python3', 'python3'].find((program) =>
  spawnSync(program, ['-c', 'import authlib, requests'], { stdio: 'ignore', timeout: 20_000 }).status === 0);
if (!python) console.warn('python3 with Authlib is not installed (Debian: python3-authlib python3-requests): the Authlib token exchange is not tested');
const AUTHLIB_SCRIPT = path.join(import.meta.dirname, 'support/authlib-exchange.py');

/** Runs the Authlib script with `env`; its JSON answer and exit code. */
function authlibExchange(env: Record<string, string>): Promise<{ code: number | null; answer: any; stderr: string }> {
  return new Promise((resolve, reject) => {
    // Only what the script needs, plus PATH: no proxy settings, no user site of the caller's.
    const child = spawn(python!, [AUTHLIB_SCRIPT], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', (error) => { clearTimeout(timer); reject(error); });
    child.once('close', (code) => {
      clearTimeout(timer);
      let answer: unknown;
      try {
        answer = JSON.parse(stdout);
      } catch {
        answer = stdout;
      }
      resolve({ code, answer, stderr });
    });
  });
}

let tdb: TestDatabase;
let server: TestServer;
let x: ExchangeWorld;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  x = await exchangeWorld(tdb.database.db);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

describe('token exchange with oauth4webapi', () => {
  it('gives the front service a payments token for the person, naming it in act', async () => {
    const issuer = new URL(server.url);
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
    expect(as.grant_types_supported).toContain(TOKEN_EXCHANGE);
    const subject = await personToken(server.url, x);
    const client = { client_id: x.front.id };
    const response = await oauth.genericTokenEndpointRequest(as, client, oauth.ClientSecretBasic(x.front.secret), TOKEN_EXCHANGE, {
      subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, resource: x.payments.identifier,
    }, insecure);
    const result = await oauth.processGenericTokenEndpointResponse(as, client, response);
    // Asked for nothing: what the front may ask for (charge, refund) that the person holds (charge).
    expect(result).toMatchObject({ token_type: 'bearer', scope: 'payments:charge', issued_token_type: ACCESS_TOKEN_TYPE });
    const claims = decodeJwt(result.access_token);
    const subjectClaims = decodeJwt(subject);
    expect(claims).toMatchObject({ sub: x.world.user.id, client_id: x.front.id, aud: x.payments.identifier, act: { sub: x.front.id } });
    // Never beyond the subject token's life, although the payments API gives an hour.
    expect(claims.exp!).toBeLessThanOrEqual(subjectClaims.exp!);
    expect(result.expires_in).toBeLessThanOrEqual(300);

    const seen = await introspectAs(server.url, x.front, result.access_token);
    expect(seen.body).toMatchObject({ active: true, sub: x.world.user.id, act: { sub: x.front.id }, scope: 'payments:charge' });
    expect(seen.body.lin).toBeUndefined();
  });
});

describe.skipIf(!python)('token exchange with Authlib (Python)', () => {
  it('gives the front service a payments token for the person, naming it in act', async () => {
    const subject = await personToken(server.url, x);
    const env = {
      TOKEN_ENDPOINT: `${server.url}/token`, CLIENT_ID: x.front.id, CLIENT_SECRET: x.front.secret,
      SUBJECT_TOKEN: subject, RESOURCE: x.payments.identifier,
    };
    const ran = await authlibExchange(env);
    expect(ran.code, `${JSON.stringify(ran.answer)}\n${ran.stderr}`).toBe(0);
    expect(ran.answer).toMatchObject({ token_type: 'Bearer', scope: 'payments:charge', issued_token_type: ACCESS_TOKEN_TYPE });
    const claims = decodeJwt(ran.answer.access_token);
    expect(claims).toMatchObject({ sub: x.world.user.id, client_id: x.front.id, aud: x.payments.identifier, act: { sub: x.front.id } });
    const seen = await introspectAs(server.url, x.front, ran.answer.access_token);
    expect(seen.body).toMatchObject({ active: true, act: { sub: x.front.id } });

    // A refusal reaches the library as the RFC 6749 error it is.
    const refused = await authlibExchange({ ...env, RESOURCE: x.ledger.identifier });
    expect(refused.code).toBe(1);
    expect(refused.answer).toEqual({ error: 'invalid_target', error_description: `this client may not exchange tokens for ${x.ledger.identifier}` });
  });
});

describe('a chain of three exchanges', () => {
  it('nests act, through an opaque token, and revoking the first token ends them all', async () => {
    const subject = await personToken(server.url, x);
    const toPayments = await exchange(server.url, x.front, subject, { resource: x.payments.identifier });
    expect(toPayments.body).toMatchObject({ token_type: "Bearer" });
    const toLedger = await exchange(server.url, x.paymentsService, toPayments.body.access_token, { audience: x.ledger.identifier });
    expect(toLedger.status).toBe(200);
    expect(toLedger.body.scope).toBe('ledger:read');
    const ledgerSeen = await introspectAs(server.url, x.paymentsService, toLedger.body.access_token);
    expect(ledgerSeen.body).toMatchObject({
      active: true, sub: x.world.user.id, aud: x.ledger.identifier, act: { sub: x.paymentsService.id, act: { sub: x.front.id } },
    });
    expect(ledgerSeen.body.lin).toBeUndefined();
    const toArchive = await exchange(server.url, x.ledgerService, toLedger.body.access_token, { scope: 'archive:write' });
    expect(toArchive.status).toBe(200);
    expect(decodeJwt(toArchive.body.access_token).act).toEqual({
      sub: x.ledgerService.id, act: { sub: x.paymentsService.id, act: { sub: x.front.id } },
    });

    // The person's app revokes its token: every token exchanged from it is inactive.
    const revoked = await postForm(`${server.url}/token/revocation`, { token: subject }, x.world.client);
    expect(revoked.status).toBe(200);
    expect((await introspectAs(server.url, x.front, toPayments.body.access_token)).body).toEqual({ active: false });
    expect((await introspectAs(server.url, x.paymentsService, toLedger.body.access_token)).body).toEqual({ active: false });
    expect((await introspectAs(server.url, x.ledgerService, toArchive.body.access_token)).body).toEqual({ active: false });
    const again = await exchange(server.url, x.front, subject, { resource: x.payments.identifier });
    expect(again.body).toMatchObject({ error: 'invalid_grant' });
  });

  it('revoking an opaque token in the middle ends what was exchanged from it', async () => {
    const subject = await personToken(server.url, x);
    const toPayments = await exchange(server.url, x.front, subject, { resource: x.payments.identifier });
    const toLedger = await exchange(server.url, x.paymentsService, toPayments.body.access_token, { resource: x.ledger.identifier });
    const toArchive = await exchange(server.url, x.ledgerService, toLedger.body.access_token);
    expect(toArchive.status).toBe(200);
    const revoked = await postForm(`${server.url}/token/revocation`, { token: toLedger.body.access_token }, x.paymentsService);
    expect(revoked.status).toBe(200);
    expect((await introspectAs(server.url, x.ledgerService, toArchive.body.access_token)).body).toEqual({ active: false });
    // What came before it stays.
    expect((await introspectAs(server.url, x.front, toPayments.body.access_token)).body.active).toBe(true);
  });

  it('disabling a client in the chain ends the tokens exchanged through it', async () => {
    const subject = await personToken(server.url, x);
    const toPayments = await exchange(server.url, x.front, subject, { resource: x.payments.identifier });
    const toLedger = await exchange(server.url, x.paymentsService, toPayments.body.access_token, { resource: x.ledger.identifier });
    expect(toLedger.status).toBe(200);
    await updateClient(tdb.database.db, x.front.name, { enabled: false }, NO_AUDIT);
    try {
      expect((await introspectAs(server.url, x.paymentsService, toLedger.body.access_token)).body).toEqual({ active: false });
    } finally {
      await updateClient(tdb.database.db, x.front.name, { enabled: true }, NO_AUDIT);
    }
  });
});

describe('impersonation', () => {
  it('leaves act out only for a client allowed to impersonate', async () => {
    await updateClient(tdb.database.db, x.front.name, { mayImpersonate: true }, NO_AUDIT);
    try {
      const subject = await personToken(server.url, x);
      const res = await exchange(server.url, x.front, subject, { resource: x.payments.identifier });
      expect(res.status).toBe(200);
      const claims = decodeJwt(res.body.access_token);
      expect(claims.sub).toBe(x.world.user.id);
      expect(claims.act).toBeUndefined();
    } finally {
      await updateClient(tdb.database.db, x.front.name, { mayImpersonate: false }, NO_AUDIT);
    }
  });
});

describe('a service\'s own token as subject', () => {
  it('exchanges an opaque client-credentials token for what that service holds, until it is revoked', async () => {
    const db = tdb.database.db;
    const granted = await role(db, [{ api: x.ledger.identifier, scopes: ['ledger:read'] }, { api: x.archive.identifier, scopes: ['archive:write'] }]);
    await assignRoleToClient(db, granted.name, x.bystander.name, NO_AUDIT);
    const own = await postForm(`${server.url}/token`, { grant_type: 'client_credentials', resource: x.ledger.identifier }, x.bystander);
    expect(own.status, JSON.stringify(own.body)).toBe(200);
    expect(own.body.access_token).not.toContain('.');
    const res = await exchange(server.url, x.ledgerService, own.body.access_token, { resource: x.archive.identifier });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(decodeJwt(res.body.access_token)).toMatchObject({ sub: x.bystander.id, client_id: x.ledgerService.id, act: { sub: x.ledgerService.id }, scope: 'archive:write' });
    expect((await postForm(`${server.url}/token/revocation`, { token: own.body.access_token }, x.bystander)).status).toBe(200);
    expect((await introspectAs(server.url, x.ledgerService, res.body.access_token)).body).toEqual({ active: false });
  });
});

describe('the person\'s grant', () => {
  it('revoked (a replayed refresh token) ends the tokens exchanged from its tokens', async () => {
    const flow = await signIn(server.url, x.world);
    const tokens = (await exchangeCode(server.url, x.world, flow.code, flow.verifier, { resource: x.world.api.identifier })).body;
    expect(tokens.refresh_token).toBeTruthy();
    const exchanged = await exchange(server.url, x.front, tokens.access_token, { resource: x.payments.identifier });
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    expect((await refresh(server.url, x.world, tokens.refresh_token, { resource: x.world.api.identifier })).status).toBe(200);
    expect((await refresh(server.url, x.world, tokens.refresh_token)).body.error).toBe('invalid_grant');
    expect((await introspectAs(server.url, x.front, exchanged.body.access_token)).body).toEqual({ active: false });
  });
});
