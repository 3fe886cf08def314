// A throw-away database on real Postgres, migrated and filled through Postern's own services, so
// that the server under test holds exactly what `postern apis/roles/clients create` would make.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openPostgres } from '../src/db/database.ts';
import { migrate } from '../src/db/migrator.ts';
import { createApi, updateApi } from '../src/services/apis.ts';
import { createClient, updateClient } from '../src/services/clients.ts';
import { createRole } from '../src/services/roles.ts';
import { ACCESS_TOKEN_TTL, EXCHANGE_SCOPE, EXCHANGE_TARGET, JWT_RESOURCE, OPAQUE_RESOURCE, SCOPES } from './resources.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export interface Credentials {
  clientId: string;
  clientSecret: string;
  /** The role granting the benchmark's scopes (people get it too). */
  role: string;
  /** Serves JWT_RESOURCE and exchanges its tokens for EXCHANGE_TARGET tokens (RFC 8693). */
  exchanger: { clientId: string; clientSecret: string };
}

async function runAdmin(baseUrl: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: baseUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/** Creates an empty database next to the one `baseUrl` names; `drop` removes it, connections or not. */
export async function createBenchDatabase(baseUrl: string): Promise<BenchDatabase> {
  const name = `postern_bench_${randomBytes(6).toString('hex')}`;
  await runAdmin(baseUrl, `CREATE DATABASE ${name}`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.href,
    // FORCE: a server we could not stop cleanly must not keep the database alive.
    drop: () => runAdmin(baseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

/** Migrates, then registers a JWT API, an opaque-token API, a role on both and a client holding it. */
export async function register(url: string): Promise<Credentials> {
  // No LISTEN connection: nothing here caches, and the server is not running yet.
  const database = openPostgres(url, { poolSize: 2, listen: false });
  try {
    await migrate(database);
    const db = database.db;
    const shared = { scopes: SCOPES, accessTokenTtl: ACCESS_TOKEN_TTL };
    await createApi(db, { identifier: JWT_RESOURCE, name: 'orders', ...shared }, NO_AUDIT); // JWT, ES256: the defaults
    await createApi(db, { identifier: OPAQUE_RESOURCE, name: 'orders-opaque', tokenFormat: 'opaque', ...shared }, NO_AUDIT);
    await createApi(db, { identifier: EXCHANGE_TARGET, name: 'payments', scopes: [EXCHANGE_SCOPE], accessTokenTtl: ACCESS_TOKEN_TTL }, NO_AUDIT);
    const role = await createRole(db, {
      name: 'orders-bench',
      grants: [{ api: JWT_RESOURCE, scopes: SCOPES }, { api: OPAQUE_RESOURCE, scopes: SCOPES }, { api: EXCHANGE_TARGET, scopes: [EXCHANGE_SCOPE] }],
    }, NO_AUDIT);
    const { client, clientSecret } = await createClient(db, { name: 'bench', roles: [role.name] }, NO_AUDIT);
    // The service behind the orders API exchanges the bench client's tokens for payments tokens.
    const exchanger = await createClient(db, { name: 'bench-exchanger' }, NO_AUDIT);
    await updateApi(db, JWT_RESOURCE, { owner: exchanger.client.clientId }, NO_AUDIT);
    await updateClient(db, exchanger.client.clientId, { mayExchange: [{ api: EXCHANGE_TARGET, scopes: [EXCHANGE_SCOPE] }] }, NO_AUDIT);
    return {
      clientId: client.clientId,
      clientSecret: clientSecret!,
      role: role.name,
      exchanger: { clientId: exchanger.client.clientId, clientSecret: exchanger.clientSecret! },
    };
  } finally {
    await database.close();
  }
}
