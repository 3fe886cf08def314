// Probes for load balancers and Kubernetes: liveness (/healthz: the process answers) and
// readiness (/readyz: the database answers, its migrations are current, keys are loaded, and
// the process is not shutting down).
import Router from '@koa/router';
import { STRICT_ROUTING } from '../domain/endpoints.ts';
import type { Logger } from '../platform/logger.ts';

export interface ReadinessChecks {
  /** Resolves when the database answers; rejects otherwise. */
  database(): Promise<void>;
  /** Migrations on disk that the database has not applied. */
  pendingMigrations(): Promise<string[]>;
  keysLoaded(): boolean;
  /** True once shutdown has begun: load balancers should stop sending requests. */
  draining(): boolean;
}

const PROBE_TIMEOUT_MS = 2000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/** The database's part of readiness: whether it answers and has every migration applied. */
async function checkDatabase(checks: ReadinessChecks, logger?: Logger): Promise<Record<string, string>> {
  try {
    await withTimeout(checks.database(), PROBE_TIMEOUT_MS);
    const pending = await withTimeout(checks.pendingMigrations(), PROBE_TIMEOUT_MS);
    return pending.length ? { migrations: `pending: ${pending.join(', ')}` } : {};
  } catch (error) {
    // The detail (host, port, driver message) goes to the log, not to whoever probes.
    logger?.debug({ err: error }, 'readiness: database check failed');
    return { database: 'unreachable' };
  }
}

function localProblems(checks: ReadinessChecks): Record<string, string> {
  const problems: Record<string, string> = {};
  if (checks.draining()) problems.process = 'shutting down';
  if (!checks.keysLoaded()) problems.keys = 'not loaded';
  return problems;
}

/** How long one look at the database answers /readyz. */
export const READINESS_CACHE_MS = 1000;

export interface ReadinessOptions {
  logger?: Logger;
  /** Told each time /readyz asks the database (a metric counts them). */
  onDatabaseCheck?(): void;
  /** The clock (tests may move it). */
  now?(): number;
}

/**
 * /readyz is open to anyone, and asks the database two queries. One look at the database answers
 * every probe for READINESS_CACHE_MS, and probes arriving while it runs wait for that same look,
 * so a flood of probes costs the database at most one check a second. Draining and the keys are
 * read from memory on every probe: a shutdown shows at once.
 */
export function readinessProbe(checks: ReadinessChecks, options: ReadinessOptions = {}): () => Promise<Record<string, string>> {
  const now = options.now ?? Date.now;
  let last: { at: number; problems: Promise<Record<string, string>> } | undefined;
  return async () => {
    if (!last || now() - last.at >= READINESS_CACHE_MS) {
      options.onDatabaseCheck?.();
      const problems = checkDatabase(checks, options.logger);
      const look = { at: Number.POSITIVE_INFINITY, problems };
      last = look;
      // Fresh from when it answered: a slow check is not cached as if it were older.
      void problems.then(() => { look.at = now(); });
    }
    return { ...localProblems(checks), ...await last.problems };
  };
}

export function healthRoutes(checks?: ReadinessChecks, options: ReadinessOptions = {}): Router {
  const router = new Router(STRICT_ROUTING);
  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  if (checks) {
    const readiness = readinessProbe(checks, options);
    router.get('/readyz', async (ctx) => {
      const problems = await readiness();
      ctx.set('Cache-Control', 'no-store');
      const ready = Object.keys(problems).length === 0;
      ctx.status = ready ? 200 : 503;
      ctx.body = ready ? { status: 'ok' } : { status: 'unavailable', problems };
    });
  }
  return router;
}
