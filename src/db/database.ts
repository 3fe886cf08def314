// Opens the store of record: real Postgres (DATABASE_URL) or the embedded PGlite in a data folder.
import fs from 'node:fs';
import path from 'node:path';
// The embedded database (its WebAssembly Postgres is tens of megabytes of heap) is loaded only
// where it is used: a server or CLI on Postgres never loads it.
import type { PGlite } from '@electric-sql/pglite';
import { Kysely, PGliteDialect, PostgresDialect } from 'kysely';
import pg from 'pg';
import { type ChangeFeed, PostgresChangeFeed } from './change-feed.ts';
import { namePreparedStatements } from './prepared.ts';
import type { Db, Tables } from './tables.ts';

/** Runs SQL text (several statements allowed); resolves to the rows of the last statement. */
export type ScriptExec = (sql: string) => Promise<Record<string, unknown>[]>;
export type ScriptRunner = (fn: (exec: ScriptExec) => Promise<void>) => Promise<void>;

export interface Database {
  kind: 'postgres' | 'embedded';
  db: Db;
  /**
   * Cross-process change notifications, or null where there is no reliable channel (the embedded
   * store, whose only writer besides the server goes through a socket that does not deliver
   * notifications). Caches must not cache without one.
   */
  changes: ChangeFeed | null;
  /** Runs multi-statement SQL scripts inside one transaction (migrations). */
  runScripts: ScriptRunner;
  /** The connection pool (Postgres only): shared rate-limit counters and pool metrics use it. */
  pool?: pg.Pool;
  close(): Promise<void>;
}

/** The socket through which other local processes (the CLI) reach a running embedded store. */
export function embeddedSocketPath(dataDir: string): string {
  return path.join(dataDir, '.s.PGSQL.5432');
}

const MAX_SOCKET_PATH = 100;

function pidFilePath(dataDir: string): string {
  return path.join(dataDir, 'postern.pid');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

type Holder = { pid: number; role: 'server' | 'cli' };

function readHolder(dataDir: string): Holder | undefined {
  try {
    const [pid, role] = fs.readFileSync(pidFilePath(dataDir), 'utf8').trim().split(' ');
    const holder = { pid: Number(pid), role: role === 'cli' ? 'cli' as const : 'server' as const };
    return Number.isInteger(holder.pid) && holder.pid > 0 && holder.pid !== process.pid && isAlive(holder.pid)
      ? holder : undefined;
  } catch {
    return undefined;
  }
}

/** The live server process holding the data folder, if any. */
export function embeddedServerPid(dataDir: string): number | undefined {
  const holder = readHolder(dataDir);
  return holder?.role === 'server' ? holder.pid : undefined;
}

/**
 * Takes the data folder for this process (PGlite allows one process per folder). The pid file is
 * created exclusively; one left by a process that is gone is replaced.
 */
function lockDataDir(dataDir: string, role: Holder['role']): () => void {
  const file = pidFilePath(dataDir);
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      fs.writeFileSync(file, `${process.pid} ${role}`, { mode: 0o600, flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = readHolder(dataDir);
      if (holder) {
        throw new Error(holder.role === 'server'
          ? `the embedded database in ${dataDir} is in use by a Postern server (PID ${holder.pid})`
          : `the embedded database in ${dataDir} is in use by another postern command (PID ${holder.pid}); try again when it has finished`);
      }
      fs.rmSync(file, { force: true });
    }
  }
  throw new Error(`cannot lock the embedded database in ${dataDir}`);
}

export function openPostgres(
  connectionString: string,
  options: { poolSize?: number; listen?: boolean } = {},
): Database {
  const pool = new pg.Pool({
    connectionString,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client that loses its connection emits 'error' on the pool; without a listener that
  // would crash the process. The next query reconnects.
  pool.on('error', () => {});
  // A client checked out of the pool has no 'error' listener (the pool removes its own): a
  // connection lost mid-query would emit an unhandled 'error' and end the process. The query
  // itself still rejects, so this listener only keeps the process alive.
  pool.on('connect', (client) => {
    client.on('error', () => {});
    namePreparedStatements(client);
  });
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
  const changes = options.listen === false ? null : new PostgresChangeFeed(connectionString);
  return {
    kind: 'postgres',
    db,
    changes,
    pool,
    runScripts: async (fn) => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await fn(async (text) => {
          const result = await client.query(text);
          const last = Array.isArray(result) ? result.at(-1) : result;
          return last?.rows ?? [];
        });
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
    close: async () => {
      await changes?.close();
      await db.destroy();
      // kysely ends the pool only if it used it; migrations may have been the only user.
      if (!pool.ended) await pool.end();
    },
  };
}

/** Wraps an open PGlite instance (an on-disk folder or an in-memory one). */
export function wrapPGlite(pglite: PGlite, onClose?: () => Promise<void>): Database {
  const db = new Kysely<Tables>({ dialect: new PGliteDialect({ pglite }) });
  return {
    kind: 'embedded',
    db,
    changes: null,
    runScripts: async (fn) => {
      await pglite.transaction(async (tx) => {
        await fn(async (text) => {
          const results = await tx.exec(text);
          return (results.at(-1)?.rows ?? []) as Record<string, unknown>[];
        });
      });
    },
    close: async () => {
      await onClose?.();
      await db.destroy();
      if (!pglite.closed) await pglite.close();
    },
  };
}

/**
 * The server's embedded store: PGlite in `dataDir`, shared with the CLI through a Unix socket
 * inside that folder (PGlite allows one process per folder).
 */
export async function openEmbeddedForServer(dataDir: string): Promise<Database> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const unlock = lockDataDir(dataDir, 'server');
  let pglite: PGlite;
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    pglite = await PGlite.create(path.join(dataDir, 'pgdata'));
  } catch (error) {
    unlock();
    throw error;
  }
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const socketPath = embeddedSocketPath(dataDir);
  fs.rmSync(socketPath, { force: true });
  // Unix socket paths are limited to about 100 bytes; with a longer folder path the CLI cannot
  // reach a running server and says so.
  const socketServer = Buffer.byteLength(socketPath) <= MAX_SOCKET_PATH
    ? new PGLiteSocketServer({ db: pglite, path: socketPath, maxConnections: 8 })
    : undefined;
  await socketServer?.start();
  return wrapPGlite(pglite, async () => {
    await socketServer?.stop().catch(() => {});
    fs.rmSync(socketPath, { force: true });
    unlock();
  });
}

/**
 * The CLI's embedded store: through the running server's socket when there is one, else the
 * folder itself.
 */
export async function openEmbeddedForCli(dataDir: string): Promise<Database> {
  const holder = embeddedServerPid(dataDir);
  if (holder) {
    const socketPath = embeddedSocketPath(dataDir);
    if (!fs.existsSync(socketPath)) {
      throw new Error(`the Postern server with PID ${holder} holds the embedded database in ${dataDir} and cannot be reached `
        + '(is the folder path over 100 characters?); stop it, or use DATABASE_URL');
    }
    // pg takes the folder of the socket as host and builds the file name from the port.
    const url = `postgres://postgres@localhost/postgres?host=${encodeURIComponent(path.dirname(socketPath))}`;
    return openPostgres(url, { poolSize: 1, listen: false });
  }
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const unlock = lockDataDir(dataDir, 'cli');
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    const pglite = await PGlite.create(path.join(dataDir, 'pgdata'));
    return wrapPGlite(pglite, async () => unlock());
  } catch (error) {
    unlock();
    throw error;
  }
}

/**
 * The store the configuration names: Postgres with DATABASE_URL, else the embedded one. A CLI
 * command runs its queries one after another on one connection, as it does through a server's
 * socket: a command that reads many rows would otherwise open a connection per query it runs
 * at once, each costing the server a new backend, and wait for each to close.
 */
export async function openDatabase(
  config: { databaseUrl: string | undefined; databasePoolSize: number; dataDir: string },
  role: 'server' | 'cli',
): Promise<Database> {
  if (config.databaseUrl) {
    return openPostgres(config.databaseUrl, { poolSize: role === 'server' ? config.databasePoolSize : 1, listen: role === 'server' });
  }
  return role === 'server' ? openEmbeddedForServer(config.dataDir) : openEmbeddedForCli(config.dataDir);
}
