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

/** What is wrong, by check; empty when ready. */
export async function checkReadiness(checks: ReadinessChecks, logger?: Logger): Promise<Record<string, string>> {
  const problems: Record<string, string> = {};
  if (checks.draining()) problems.process = 'shutting down';
  if (!checks.keysLoaded()) problems.keys = 'not loaded';
  try {
    await withTimeout(checks.database(), PROBE_TIMEOUT_MS);
    const pending = await withTimeout(checks.pendingMigrations(), PROBE_TIMEOUT_MS);
    if (pending.length) problems.migrations = `pending: ${pending.join(', ')}`;
  } catch (error) {
    // The detail (host, port, driver message) goes to the log, not to whoever probes.
    logger?.debug({ err: error }, 'readiness: database check failed');
    problems.database = 'unreachable';
  }
  return problems;
}

export function healthRoutes(checks?: ReadinessChecks, logger?: Logger): Router {
  const router = new Router(STRICT_ROUTING);
  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  if (checks) {
    router.get('/readyz', async (ctx) => {
      const problems = await checkReadiness(checks, logger);
      ctx.set('Cache-Control', 'no-store');
      const ready = Object.keys(problems).length === 0;
      ctx.status = ready ? 200 : 503;
      ctx.body = ready ? { status: 'ok' } : { status: 'unavailable', problems };
    });
  }
  return router;
}
