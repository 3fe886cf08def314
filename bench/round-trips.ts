// `npm run bench:round-trips`: the database round trips of each operation, counted on a real
// server (in this process, on a fresh Postgres database) by wrapping the query method of every
// connection its pool opens. Each operation runs once to warm the caches, then ROUNDS times one
// after the other; the table shows the average per operation, by kind of statement. Audit events
// are written in batches about once a second: their inserts are counted in (flushed at the end
// of each operation's rounds) and so appear as a fraction. A process's heartbeat (a NOTIFY to
// itself and an UPDATE of its row every 5 s) is left out: it is not the operation's.
//   BENCH_DATABASE_URL  Postgres server to create the throw-away database on
import type pg from 'pg';
import { openPostgres } from '../src/db/database.ts';
import { migrate } from '../src/db/migrator.ts';
import { publishChange } from '../src/store/changes.ts';
import { adminCall, adminClient, tokenFor } from '../test/support/admin.ts';
import { api, role, serviceClient } from '../test/support/fixtures.ts';
import { postForm, startServer } from '../test/support/server.ts';
import { formAction, hiddenValue } from '../test/support/browser.ts';
import { CALLBACK, exchangeCode, refresh, signIn, signInWorld, startAuthorization, PASSWORD } from '../test/support/sign-in.ts';
import { createBenchDatabase } from './bench-db.ts';

const ROUNDS = 20;
type Kind = 'read' | 'write' | 'notify' | 'transaction';
const KINDS: Kind[] = ['read', 'write', 'notify', 'transaction'];

let counting = false;
let counts: Record<Kind, number> = { read: 0, write: 0, notify: 0, transaction: 0 };
let heartbeats = 0;

/** What kind of round trip a statement is (its first word, and what it calls). */
function classify(text: string, values: unknown[] | undefined): Kind | 'heartbeat' {
  const sql = text.trim().toLowerCase();
  if (/^(begin|commit|rollback|start transaction)/.test(sql)) return 'transaction';
  if (sql.includes('pg_notify')) return JSON.stringify(values ?? []).includes('\\"kind\\":\\"ping\\"') ? 'heartbeat' : 'notify';
  if (/^(insert|update|delete)\b/.test(sql) || /^with\b[\s\S]*\b(insert|update|delete)\b/.test(sql)) return 'write';
  return 'read';
}

function instrument(pool: pg.Pool): void {
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      if (counting) {
        const [first, second] = args as [string | { text: string; values?: unknown[] }, unknown[] | undefined];
        const kind = typeof first === 'string' ? classify(first, second) : classify(first.text, first.values);
        if (kind === 'heartbeat') heartbeats += 1;
        else counts[kind] += 1;
      }
      return query(...args);
    };
  });
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

interface Row { name: string; perOperation: Record<Kind, number>; total: number }

async function main(): Promise<void> {
  const base = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const bench = await createBenchDatabase(base);
  const database = openPostgres(bench.url, { poolSize: 10 });
  instrument(database.pool!);
  const rows: Row[] = [];
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    await migrate(database);
    const db = database.db;
    server = await startServer(database, { RATE_LIMIT_SIGN_IN_ADDRESS: '0' });
    const issuer = server.url;
    const jwtApi = (await api(db, { scopes: ['jobs:run'] })).identifier;
    const opaqueApi = (await api(db, { scopes: ['ledger:read'], tokenFormat: 'opaque' })).identifier;
    const runner = await role(db, [{ api: jwtApi, scopes: ['jobs:run'] }, { api: opaqueApi, scopes: ['ledger:read'] }]);
    const client = await serviceClient(db, [runner.name]);
    const world = await signInWorld(db, { firstParty: true });
    const admin = await adminClient(db);
    const adminToken = await tokenFor(issuer, admin);

    const ok = (res: { status: number; body: unknown }, what: string) => {
      if (res.status !== 200) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body as Record<string, string>;
    };
    const token = async (resource: string) => ok(await postForm(`${issuer}/token`, { grant_type: 'client_credentials', resource }, client), 'token').access_token!;
    const jwt = await token(jwtApi);
    const opaque = await token(opaqueApi);
    let refreshToken = ok(await exchangeCode(issuer, world, ...(await (async () => {
      const flow = await signIn(issuer, world);
      return [flow.code, flow.verifier] as const;
    })())), 'code exchange').refresh_token!;

    const operations: [string, () => Promise<unknown>][] = [
      ['client credentials, JWT (caches warm)', () => token(jwtApi)],
      ['client credentials, JWT, first after a change to the client', async () => {
        counting = false;
        await publishChange(db, { kind: 'client', clientId: client.id });
        await settle();
        counting = true;
        return token(jwtApi);
      }],
      ['client credentials, opaque token', () => token(opaqueApi)],
      ['introspection, JWT', () => postForm(`${issuer}/token/introspection`, { token: jwt }, client)],
      ['introspection, opaque token', () => postForm(`${issuer}/token/introspection`, { token: opaque }, client)],
      ['revocation, JWT', async () => postForm(`${issuer}/token/revocation`, { token: await (async () => {
        counting = false;
        const fresh = await token(jwtApi);
        counting = true;
        return fresh;
      })() }, client)],
      ['refresh-token grant (rotation)', async () => {
        refreshToken = ok(await refresh(issuer, world, refreshToken), 'refresh').refresh_token!;
      }],
      ['login page: authorization request to the login form', () => startAuthorization(issuer, world)],
      ['login: POST of the login form alone (password checked)', async () => {
        counting = false;
        const flow = await startAuthorization(issuer, world);
        const csrf = hiddenValue(flow.page, 'csrf')!;
        counting = true;
        return flow.browser.request(new URL(formAction(flow.page), flow.page.url).href, { form: { csrf, username: world.username, password: PASSWORD } });
      }],
      ['login, then the redirects to the app (grant, session, code)', async () => {
        counting = false;
        const flow = await startAuthorization(issuer, world);
        counting = true;
        return flow.browser.submit(flow.page, { username: world.username, password: PASSWORD }, { stopAt: CALLBACK });
      }],
      ['code exchange (authorization_code grant)', async () => {
        counting = false;
        const flow = await signIn(issuer, world);
        counting = true;
        ok(await exchangeCode(issuer, world, flow.code, flow.verifier), 'code exchange');
      }],
      ['config change: a client updated through the admin API (one process acknowledges)', async () => {
        const res = await adminCall(issuer, 'PATCH', `/clients/${client.id}`, { token: adminToken, body: { enabled: true } });
        if (res.status !== 200) throw new Error(`admin: ${res.status} ${res.text}`);
      }],
    ];

    for (const [name, operation] of operations) {
      counting = false;
      await operation();
      await server.app.audit.flush();
      await settle();
      counts = { read: 0, write: 0, notify: 0, transaction: 0 };
      counting = true;
      for (let i = 0; i < ROUNDS; i += 1) {
        counting = true;
        await operation();
      }
      counting = true;
      await server.app.audit.flush();
      await settle();
      counting = false;
      const perOperation = Object.fromEntries(KINDS.map((kind) => [kind, counts[kind] / ROUNDS])) as Record<Kind, number>;
      rows.push({ name, perOperation, total: KINDS.reduce((sum, kind) => sum + perOperation[kind], 0) });
      process.stderr.write(`measured ${name}\n`);
    }
  } finally {
    await server?.close();
    await database.close();
    await bench.drop();
  }

  const width = Math.max(...rows.map((row) => row.name.length));
  const format = (value: number) => (Number.isInteger(value) ? String(value) : value.toFixed(2)).padStart(6);
  console.log(`${'operation'.padEnd(width)}  ${['total', ...KINDS].map((kind) => kind.padStart(6)).join(' ')}`);
  for (const row of rows) {
    console.log(`${row.name.padEnd(width)}  ${[row.total, ...KINDS.map((kind) => row.perOperation[kind])].map(format).join(' ')}`);
  }
  console.log(`\nround trips per operation, average of ${ROUNDS}; read: SELECT; write: INSERT, UPDATE, DELETE; notify: pg_notify `
    + `(a change, or a propagation marker); transaction: BEGIN/COMMIT. Heartbeats left out: ${heartbeats} seen.`);
}

await main();
