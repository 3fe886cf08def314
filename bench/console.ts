// `npm run bench:console`: how fast every page of the admin console renders on Postgres with
// 10,000 clients, 1,000 people, 100,000 audit events and 1,000 route rules (the issue's bar:
// under 200 ms each). A throw-away database is seeded in bulk, a server runs in this process on
// loopback, an administrator signs in through the real login page, and each page is fetched 10
// times after a warm-up; the median and the slowest are printed. The overview's first load is
// the one that ends the sign-in: the first of a fresh server, before its figures are reused; it
// is held to the bar too.
//   BENCH_DATABASE_URL  Postgres server to create the throw-away database on
//   BENCH_AUDIT_EVENTS  audit events to seed (100,000 by default; the log grows with traffic)
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { buildApp, prepareKeys } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { openPostgres } from '../src/db/database.ts';
import { migrate } from '../src/db/migrator.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { MasterKey } from '../src/domain/key-encryption.ts';
import { createLogger } from '../src/platform/logger.ts';
import { createApi } from '../src/services/apis.ts';
import { createClient } from '../src/services/clients.ts';
import { createUser } from '../src/services/users.ts';
import { createBenchDatabase } from './bench-db.ts';

const CLIENTS = 10_000;
const PEOPLE = 1_000;
const EVENTS = Number(process.env.BENCH_AUDIT_EVENTS || 100_000);
if (!Number.isInteger(EVENTS) || EVENTS < 1) throw new Error('BENCH_AUDIT_EVENTS is a number of events');
const ROUTES = 1_000;
const RUNS = 10;
const LIMIT_MS = 200;
const PASSWORD = 'lantern-meadow-copper-9';

async function seed(url: string): Promise<void> {
  const database = openPostgres(url, { poolSize: 2, listen: false });
  try {
    await migrate(database);
    const db = database.db;
    await sql`insert into roles (id, name) select 'role_bench_' || i, 'bench-role-' || i from generate_series(1, 20) i`.execute(db);
    await sql`insert into clients (client_id, name, metadata, created_at)
      select 'benchclient' || lpad(i::text, 11, '0'), 'svc-' || lpad(i::text, 5, '0'),
        jsonb_build_object('client_id', 'benchclient' || lpad(i::text, 11, '0'), 'client_name', 'svc-' || lpad(i::text, 5, '0'),
          'grant_types', jsonb_build_array('client_credentials'), 'response_types', '[]'::jsonb, 'redirect_uris', '[]'::jsonb,
          'token_endpoint_auth_method', 'client_secret_basic'),
        now() - (i || ' minutes')::interval
      from generate_series(1, ${CLIENTS}) i`.execute(db);
    await sql`insert into client_secrets (id, client_id, secret_hash, created_at)
      select 'sec_bench_' || i, 'benchclient' || lpad(i::text, 11, '0'), md5(i::text), now() - ((i % 200) || ' days')::interval
      from generate_series(1, ${CLIENTS}) i`.execute(db);
    await sql`insert into client_roles (client_id, role_id)
      select 'benchclient' || lpad(i::text, 11, '0'), 'role_bench_' || (1 + i % 20) from generate_series(1, ${CLIENTS}) i`.execute(db);
    await sql`insert into users (id, username, password_hash)
      select 'usr_bench_' || i, 'person-' || lpad(i::text, 5, '0'), 'x' from generate_series(1, ${PEOPLE}) i`.execute(db);
    await sql`insert into user_roles (user_id, role_id) select 'usr_bench_' || i, 'role_bench_' || (1 + i % 20) from generate_series(1, ${PEOPLE}) i`.execute(db);
    // One every 0.43 s back from now (100,000: the last 12 hours): counted token issuance and
    // refusals, sign-in failures, changes.
    await sql`insert into audit_events (occurred_at, type, actor_type, actor_id, target_type, target_id, client_id, outcome, details)
      select now() - ((i * 0.43) || ' seconds')::interval,
        (array['token.issued', 'token.failure', 'login.failure', 'client.updated', 'token.issued'])[1 + i % 5],
        case when i % 5 = 3 then 'user' else 'client' end,
        case when i % 5 = 3 then 'usr_bench_' || (1 + i % ${PEOPLE}) else 'benchclient' || lpad((1 + i % ${CLIENTS})::text, 11, '0') end,
        case when i % 5 = 3 then 'client' end,
        case when i % 5 = 3 then 'benchclient' || lpad((1 + i % ${CLIENTS})::text, 11, '0') end,
        'benchclient' || lpad((1 + i % ${CLIENTS})::text, 11, '0'),
        case when i % 5 in (1, 2) then 'failure' else 'success' end,
        case when i % 5 in (0, 1, 4) then jsonb_build_object('count', 1 + i % 7) else '{}'::jsonb end
      from generate_series(1, ${EVENTS}) i`.execute(db);
    // Rules of one API, one path each (no two tie); gateways and the console read them.
    await createApi(db, { identifier: 'https://shop.bench', name: 'shop', scopes: ['shop:read'] }, NO_AUDIT);
    await sql`insert into route_rules (id, api_id, host, methods, path, scopes_all)
      select 'route_bench_' || lpad(i::text, 5, '0'), (select id from apis where identifier = 'https://shop.bench'), 'shop.bench',
        '["GET"]'::jsonb, '/items/' || i || '/{id}', '["shop:read"]'::jsonb
      from generate_series(1, ${ROUTES}) i`.execute(db);
    await sql`analyze`.execute(db);
    await createUser(db, { username: 'bench-admin', password: PASSWORD, roles: ['postern-admin'] }, NO_AUDIT);
    await createClient(db, {
      name: 'bench-web', grantTypes: ['authorization_code'], redirectUris: ['https://app.bench/cb'], postLogoutRedirectUris: ['https://app.bench/'],
    }, NO_AUDIT);
  } finally {
    await database.close();
  }
}

/** A cookie jar over fetch, following nothing by itself. */
class Jar {
  cookies = new Map<string, string>();
  async get(url: string, form?: Record<string, string>): Promise<{ status: number; location?: string; html: string }> {
    const headers: Record<string, string> = { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(url, { method: form ? 'POST' : 'GET', headers, body: form ? new URLSearchParams(form) : undefined, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const index = pair!.indexOf('=');
      this.cookies.set(pair!.slice(0, index), pair!.slice(index + 1));
    }
    return { status: response.status, location: response.headers.get('location') ?? undefined, html: await response.text() };
  }
}

async function signIn(jar: Jar, base: string): Promise<number> {
  let page = await jar.get(`${base}/console/login`);
  while (page.location) page = await jar.get(new URL(page.location, base).href);
  const action = /action="([^"]+)"/.exec(page.html)![1]!;
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.html)![1]!;
  page = await jar.get(new URL(action, base).href, { csrf, username: 'bench-admin', password: PASSWORD });
  let took = 0;
  while (page.location) {
    const started = performance.now();
    page = await jar.get(new URL(page.location, base).href);
    took = performance.now() - started;
  }
  if (!page.html.includes('<title>Overview')) throw new Error(`sign-in failed: ${page.status}`);
  return took;
}

async function main(): Promise<void> {
  const base = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const bench = await createBenchDatabase(base);
  const server = http.createServer();
  let close = async () => {};
  try {
    const seeding = Date.now();
    await seed(bench.url);
    console.log(`seeded ${CLIENTS} clients, ${PEOPLE} people, ${EVENTS} audit events in ${((Date.now() - seeding) / 1000).toFixed(1)} s`);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const url = `http://127.0.0.1:${port}`;
    const masterKey = MasterKey.generate('POSTERN_MASTER_KEY').exportText();
    const { config, problems } = loadConfig({ ISSUER: url, PORT: String(port), DATABASE_URL: bench.url, POSTERN_MASTER_KEY: masterKey, PRUNE_INTERVAL_SECONDS: '0' });
    if (problems.length) throw new Error(problems.join('; '));
    const database = openPostgres(bench.url, { poolSize: 10 });
    const { keys } = await prepareKeys(config, database, [config.masterKey!]);
    const app = await buildApp({
      config, database, logger: createLogger('silent'), cookieKeys: keys.cookieKeys, dpopNonceSecret: keys.dpopNonceSecret,
      artifactKey: keys.artifactKey, keyring: [config.masterKey!],
    });
    server.on('request', app.koa.callback());
    close = async () => { await app.close(); await database.close(); };

    const jar = new Jar();
    // The overview's first load: the page the sign-in lands on.
    const coldOverview = await signIn(jar, url);
    /** The link to the next page of a list, as the page gives it. */
    const nextOf = async (path: string, list: string, cursor = 'cursor') => {
      const page = await jar.get(`${url}/console${path}`);
      const link = new RegExp(`href="/console${list}(\\?[^"]*${cursor}=[^"]+)"`).exec(page.html);
      if (!link) throw new Error(`${path}: no next page`);
      return `${list}${link[1]!.replaceAll('&amp;', '&')}`;
    };
    const web = /href="\/console\/clients\/([^"]+)">bench-web</.exec((await jar.get(`${url}/console/clients?q=bench-web`)).html)![1]!;
    const pages = [
      '', '/apis', '/apis/api_postern', '/roles', '/roles/bench-role-3', await nextOf('/roles/bench-role-3', '/roles/role_bench_3', 'clients'),
      '/roles/bench-role-3?q=svc-01', '/clients', await nextOf('/clients', '/clients'), '/clients?q=svc-05',
      '/clients?status=disabled', '/clients/benchclient00000004242', `/clients/${web}`, '/clients/new', '/people', '/people?q=person-09',
      '/people/usr_bench_77', '/keys', '/audit', await nextOf('/audit', '/audit'), '/audit?type=token.issued',
      '/audit?target=benchclient00000004242', '/audit?actor=usr_bench_8', '/registration-tokens',
      '/route-policies', await nextOf('/route-policies', '/route-policies'), '/route-policies?path=/items/5',
      '/route-policies/route_bench_00500', '/trusted-issuers',
    ];
    const rows: [string, number, number, number][] = [];
    for (const path of pages) {
      // The first load, before any warm-up; the overview's was the sign-in's.
      const cold = performance.now();
      await jar.get(`${url}/console${path}`);
      const first = path === '' ? coldOverview : performance.now() - cold;
      await jar.get(`${url}/console${path}`);
      const times: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const started = performance.now();
        const page = await jar.get(`${url}/console${path}`);
        times.push(performance.now() - started);
        if (page.status !== 200) throw new Error(`${path}: ${page.status}`);
      }
      times.sort((a, b) => a - b);
      rows.push([`/console${path}`, first, times[Math.floor(RUNS / 2)]!, times.at(-1)!]);
    }
    const width = Math.max(...rows.map(([path]) => path.length));
    console.log(`${'page'.padEnd(width)}  first ms  median ms  slowest ms`);
    for (const [path, first, median, slowest] of rows) {
      console.log(`${path.padEnd(width)}  ${first.toFixed(1).padStart(8)}  ${median.toFixed(1).padStart(9)}  ${slowest.toFixed(1).padStart(10)}${median > LIMIT_MS ? '  OVER' : ''}`);
    }
    const over = rows.filter(([, , median]) => median > LIMIT_MS);
    console.log(over.length ? `${over.length} pages over ${LIMIT_MS} ms (median)` : `every page under ${LIMIT_MS} ms (median)`);
    const coldOver = coldOverview > LIMIT_MS;
    console.log(`the overview's first load, on a fresh server: ${coldOverview.toFixed(1)} ms${coldOver ? `, over ${LIMIT_MS} ms` : ''}`);
    process.exitCode = over.length || coldOver ? 1 : 0;
  } finally {
    server.closeAllConnections();
    server.close();
    await close();
    await bench.drop();
  }
}

await main();
