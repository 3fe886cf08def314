// Starts the server: configuration, database, migrations, keys, HTTP. With WORKERS > 1 this
// process becomes the primary of a cluster (src/cluster.ts): it prepares the database once, then
// each worker runs this same file and serves the shared ports.
import cluster from 'node:cluster';
import { MissingKeysError, prepareKeys } from './app.ts';
import { loadConfig } from './config.ts';
import { openDatabase, type Database } from './db/database.ts';
import { migrate, pendingMigrations } from './db/migrator.ts';
import { pingDatabase } from './store/health.ts';
import { createLogger } from './platform/logger.ts';
import { resolveMasterKey, type ResolvedMasterKey } from './platform/master-key.ts';
import { runPrimary } from './cluster.ts';
import { serve } from './serve.ts';
import { loadTlsMaterial, type TlsMaterial } from './platform/tls.ts';
import { hasSigningKeys, MasterKeyError, type Keyring } from './services/keys.ts';

function fail(lines: string[]): never {
  process.stderr.write(`Postern cannot start:\n${lines.map((line) => `  - ${line}`).join('\n')}\n`);
  process.exit(1);
}

const { config, problems, conveniences } = loadConfig();
const logger = createLogger(config.logLevel);

let tlsMaterial: TlsMaterial = { server: undefined, authorities: [] };
try {
  tlsMaterial = loadTlsMaterial(config);
} catch (error) {
  problems.push((error as Error).message);
}

// Open the database when the configuration names one we may use, even if other settings are
// wrong, so that its problems (unreachable, no keys in production) are listed with the rest.
let opened: Database | undefined;
const databaseUsable = !problems.some((problem) => problem.startsWith('DATABASE_URL'));
if (databaseUsable && (problems.length === 0 || (config.mode === 'production' && config.databaseUrl))) {
  try {
    opened = await openDatabase(config, 'server');
    await pingDatabase(opened.db);
  } catch (error) {
    problems.push(`database: ${(error as Error).message}`);
  }
}
if (opened && !config.migrateOnStart && !problems.some((p) => p.startsWith('database:'))) {
  // MIGRATE_ON_START=false: migrations are applied by `postern migrate`, never here.
  const pending = await pendingMigrations(opened).catch((error: Error) => {
    problems.push(`database: ${error.message}`);
    return [];
  });
  if (pending.length) problems.push(describePending(pending));
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
let prepared: Awaited<ReturnType<typeof prepareKeys>>;
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
  const applied = config.migrateOnStart ? await migrate(database) : [];
  if (applied.length) logger.info({ migrations: applied }, 'migrations applied');
  prepared = await prepareKeys(config, database, keyring);
  if (prepared.encrypted) logger.info({ rows: prepared.encrypted, masterKey: master.key.fingerprint }, 'encrypted key material stored in plaintext by an older version');
  if (prepared.converted) logger.info({ rows: prepared.converted }, 'hashed artifacts stored with their raw values by an older version');
} catch (error) {
  await database.close().catch(() => {});
  // A wrong master key is its own message; nothing was written.
  fail([error instanceof MasterKeyError ? error.message : `database: ${(error as Error).message}`]);
}

const clustered = config.workers > 1;
if (clustered && cluster.isPrimary) {
  // The database is migrated and the keys exist: the workers find everything ready.
  await database.close();
  runPrimary(config, logger, config.mode === 'development' ? banner() : undefined);
} else {
  await serve({ config, database, logger, keys: prepared.keys, keyring, clustered, tls: tlsMaterial, banner: config.mode === 'development' && !clustered ? banner() : undefined });
}

function describePending(pending: string[]): string {
  const names = pending.length > 3 ? `${pending[0]} ... ${pending.at(-1)}` : pending.join(', ');
  return `the database lacks ${pending.length} migration${pending.length === 1 ? '' : 's'} of this version (${names}): `
    + `apply ${pending.length === 1 ? 'it' : 'them'} with \`postern migrate\` (MIGRATE_ON_START is off)`;
}

function banner(): string {
  const bar = '='.repeat(78);
  return `${bar}
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
`;
}

