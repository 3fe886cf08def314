// Starts the server: configuration, database, migrations, keys, HTTP.
import http from 'node:http';
import { sql } from 'kysely';
import { buildApp, MissingKeysError, prepareKeys } from './app.ts';
import { loadConfig } from './config.ts';
import { openDatabase, type Database } from './db/database.ts';
import { migrate } from './db/migrator.ts';
import { createLogger } from './logger.ts';
import { resolveMasterKey, type ResolvedMasterKey } from './master-key.ts';
import { hasSigningKeys, MasterKeyError, type Keyring } from './services/keys.ts';

function fail(lines: string[]): never {
  process.stderr.write(`Postern cannot start:\n${lines.map((line) => `  - ${line}`).join('\n')}\n`);
  process.exit(1);
}

const { config, problems, conveniences } = loadConfig();
const logger = createLogger(config.logLevel);

// Open the database when the configuration names one we may use, even if other settings are
// wrong, so that its problems (unreachable, no keys in production) are listed with the rest.
let opened: Database | undefined;
const databaseUsable = !problems.some((problem) => problem.startsWith('DATABASE_URL'));
if (databaseUsable && (problems.length === 0 || (config.mode === 'production' && config.databaseUrl))) {
  try {
    opened = await openDatabase(config, 'server');
    await sql`select 1`.execute(opened.db);
  } catch (error) {
    problems.push(`database: ${(error as Error).message}`);
  }
}
if (opened && config.mode === 'production' && !problems.some((p) => p.startsWith('database:'))) {
  // Production never generates keys; they are created once with `postern keys generate`.
  if (!(await hasSigningKeys(opened.db).catch(() => false))) problems.push(new MissingKeysError().message);
}
if (problems.length || !opened) {
  await opened?.close().catch(() => {});
  fail(problems);
}
const database: Database = opened;

let master: ResolvedMasterKey;
let keyring: Keyring;
let prepared;
try {
  // The configured master key, or in development the generated one beside the embedded data.
  master = resolveMasterKey(config);
  // POSTERN_NEW_MASTER_KEY may open keys too, so a restart during a master-key rotation works.
  keyring = [master.key, ...(config.newMasterKey ? [config.newMasterKey] : [])];
} catch (error) {
  await database.close().catch(() => {});
  fail([(error as Error).message]);
}
try {
  const applied = await migrate(database);
  if (applied.length) logger.info({ migrations: applied }, 'migrations applied');
  prepared = await prepareKeys(config, database, keyring);
  if (prepared.encrypted) logger.info({ rows: prepared.encrypted, masterKey: master.key.fingerprint }, 'encrypted key material stored in plaintext by an older version');
} catch (error) {
  await database.close().catch(() => {});
  // A wrong master key is its own message; nothing was written.
  fail([error instanceof MasterKeyError ? error.message : `database: ${(error as Error).message}`]);
}

const app = await buildApp({
  config, database, logger, cookieKeys: prepared.keys.cookieKeys, dpopNonceSecret: prepared.keys.dpopNonceSecret, keyring,
});
function createServer(handler: http.RequestListener): http.Server {
  const created = http.createServer(handler);
  created.headersTimeout = 10_000;
  created.requestTimeout = 30_000;
  created.keepAliveTimeout = 5_000;
  return created;
}

async function listenOrFail(target: http.Server, host: string, port: number, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    target.once('error', reject);
    target.listen(port, host, () => resolve());
  }).catch(async (error: Error) => {
    server.close();
    await database.close();
    fail([`cannot listen${what ? ` ${what}` : ''} on ${host}:${port}: ${error.message}`]);
  });
}

const server = createServer(app.koa.callback());
// The admin API's own listener (ADMIN_PORT), apart from the public endpoints.
const adminServer = config.admin ? createServer(app.adminKoa.callback()) : undefined;
await listenOrFail(server, config.host, config.port, '');
if (adminServer && config.admin) {
  await listenOrFail(adminServer, config.admin.host, config.admin.port, 'for the admin API');
}

if (config.mode === 'development') {
  const bar = '='.repeat(78);
  process.stdout.write(`${bar}
 Postern is running in DEVELOPMENT mode at ${config.issuer}
 Development conveniences in use (production refuses all of them):
${conveniences.map((item) => `   - ${item}`).join('\n')}
${master.generatedFile ? `   - a master key was just generated and written to ${master.generatedFile} (mode 0600)\n` : ''}\
${prepared.generated ? '   - signing keys were just generated and stored in the database\n' : ''}
 Register a first API and a client that may call it, from another terminal:
   npx postern apis create --identifier https://orders.internal --scopes "orders:read orders:write"
   npx postern roles create orders-reader --grant "https://orders.internal orders:read"
   npx postern clients create --name billing --role orders-reader
 then get a token:
   curl -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials ${config.issuer}/token
${bar}
`);
}
logger.info({ issuer: config.issuer, host: config.host, port: config.port, admin: config.admin ?? 'public listener', mode: config.mode, store: database.kind }, 'listening');

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping');
  const servers = adminServer ? [server, adminServer] : [server];
  const closed = servers.map((each) => new Promise((resolve) => each.once('close', resolve)));
  for (const each of servers) {
    each.close();
    each.closeIdleConnections();
  }
  const force = setTimeout(() => servers.forEach((each) => each.closeAllConnections()), 10_000);
  force.unref();
  await Promise.all(closed);
  await app.close();
  await database.close();
  process.exit(0);
}
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
