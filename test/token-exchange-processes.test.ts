// Revocation along a chain of exchanged tokens (RFC 8693) holds on every process: two servers
// share one database, each with its own pool, change feed and caches. A token exchanged on A and
// checked on B (so B has cached the revocation list and the clients) is inactive on B once its
// subject token, an opaque token in the middle of the chain, or a client of the chain is revoked
// or disabled on A.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres, type Database } from '../src/db/database.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { updateClient } from '../src/services/clients.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { exchange, exchangeWorld, introspectAs, personToken, type ExchangeWorld } from './support/exchange.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let second: Database | undefined;
let a: TestServer;
let b: TestServer;
let x: ExchangeWorld;

beforeAll(async () => {
  tdb = await createTestDatabase();
  a = await startServer(tdb.database);
  second = onPostgres ? openPostgres(tdb.url!, { poolSize: 5 }) : undefined;
  b = await startServer(second ?? tdb.database, { ISSUER: a.url });
  x = await exchangeWorld(tdb.database.db);
}, 60_000);

afterAll(async () => {
  await b?.close();
  await a?.close();
  await second?.close();
  await tdb?.drop();
});

async function chain() {
  const subject = await personToken(a.url, x);
  const payments = (await exchange(a.url, x.front, subject, { resource: x.payments.identifier })).body.access_token as string;
  const ledger = (await exchange(a.url, x.paymentsService, payments, { resource: x.ledger.identifier })).body.access_token as string;
  const archive = (await exchange(a.url, x.ledgerService, ledger)).body.access_token as string;
  // B has checked every token once: its revocation list and clients are cached.
  for (const [client, token] of [[x.front, payments], [x.paymentsService, ledger], [x.ledgerService, archive]] as const) {
    expect((await introspectAs(b.url, client, token)).body.active).toBe(true);
  }
  return { subject, payments, ledger, archive };
}

const inactiveOn = async (server: TestServer, client: { id: string; secret: string }, token: string) =>
  expect((await introspectAs(server.url, client, token)).body).toEqual({ active: false });

describe('revocation along a chain, seen by another process', () => {
  it('revoking the subject token on A ends every exchanged token on B', async () => {
    const tokens = await chain();
    expect((await postForm(`${a.url}/token/revocation`, { token: tokens.subject }, x.world.client)).status).toBe(200);
    await inactiveOn(b, x.front, tokens.payments);
    await inactiveOn(b, x.paymentsService, tokens.ledger);
    await inactiveOn(b, x.ledgerService, tokens.archive);
  });

  it('revoking an opaque token of the chain on A ends what was exchanged from it on B', async () => {
    const tokens = await chain();
    expect((await postForm(`${a.url}/token/revocation`, { token: tokens.ledger }, x.paymentsService)).status).toBe(200);
    await inactiveOn(b, x.ledgerService, tokens.archive);
    expect((await introspectAs(b.url, x.front, tokens.payments)).body.active).toBe(true);
  });

  it('a subject token revoked on A is refused by B\'s exchange at once (the fast path)', async () => {
    const subject = await personToken(a.url, x);
    expect((await exchange(b.url, x.front, subject, { resource: x.payments.identifier })).status).toBe(200);
    expect((await postForm(`${a.url}/token/revocation`, { token: subject }, x.world.client)).status).toBe(200);
    expect((await exchange(b.url, x.front, subject, { resource: x.payments.identifier })).body).toMatchObject({ error: 'invalid_grant' });
  });

  it('disabling a client of the chain ends the tokens exchanged through it on both', async () => {
    const tokens = await chain();
    await updateClient(tdb.database.db, x.paymentsService.name, { enabled: false }, NO_AUDIT);
    try {
      await inactiveOn(b, x.ledgerService, tokens.archive);
      await inactiveOn(a, x.ledgerService, tokens.archive);
      expect((await introspectAs(b.url, x.front, tokens.payments)).body.active).toBe(true);
    } finally {
      await updateClient(tdb.database.db, x.paymentsService.name, { enabled: true }, NO_AUDIT);
    }
  });
});
