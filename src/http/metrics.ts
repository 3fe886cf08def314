// Request metrics and the access log for every request, and the /metrics endpoint.
import { timingSafeEqual, createHash } from 'node:crypto';
import type Koa from 'koa';
import type { Logger } from '../platform/logger.ts';
import type { Metrics } from '../platform/metrics.ts';

const EXACT = new Set([
  '/token', '/token/introspection', '/token/revocation', '/jwks', '/.well-known/openid-configuration', '/auth',
  '/me', '/session/end', '/reg', '/request', '/healthz', '/readyz', '/metrics',
]);

/** A bounded route name for labels: never the raw path, which an attacker chooses. */
export function routeOf(path: string, issuerPath: string): string {
  if (path.startsWith('/.well-known/oauth-authorization-server')) return '/.well-known/oauth-authorization-server';
  if (path === '/admin' || path.startsWith('/admin/')) return '/admin';
  if (path === '/healthz' || path === '/readyz' || path === '/metrics') return path;
  if (path.startsWith('/gate/')) return '/gate';
  if (issuerPath && !path.startsWith(`${issuerPath}/`)) return 'other';
  const rest = path.slice(issuerPath.length);
  if (EXACT.has(rest)) return rest;
  if (rest.startsWith('/interaction/')) return '/interaction/:uid';
  if (rest.startsWith('/auth/')) return '/auth/:uid';
  return 'other';
}

/**
 * The path as the access log shows it: the uid of a sign-in interaction (`/interaction/<uid>...`,
 * `/auth/<uid>`) is what lets a browser continue it, a bearer value like a cookie, so it is
 * written `:uid`.
 */
export function loggedPath(path: string, issuerPath: string): string {
  if (issuerPath && !path.startsWith(`${issuerPath}/`)) return path;
  const rest = path.slice(issuerPath.length);
  const masked = rest.replace(/^\/(interaction|auth)\/[^/]+/, '/$1/:uid');
  return masked === rest ? path : `${issuerPath}${masked}`;
}

function errorCode(body: unknown): string {
  const error = (body as { error?: unknown } | undefined)?.error;
  return typeof error === 'string' && /^[a-z_]{1,40}$/.test(error) ? error : 'other';
}

/**
 * The client a request authenticated as, if any: the provider's client (protocol routes), one the
 * introspection fast path authenticated, or the admin API's caller. Never a client_id merely
 * presented: those are the caller's words, not a fact.
 */
function authenticatedClient(ctx: Koa.Context): string | undefined {
  // The provider knows the client before it checks the credentials: an invalid_client answer
  // (RFC 6749 §5.2) means they failed.
  if ((ctx.body as { error?: unknown } | undefined)?.error === 'invalid_client') return undefined;
  const oidc = (ctx as { oidc?: { client?: { clientId?: unknown } } }).oidc;
  const id = oidc?.client?.clientId ?? ctx.state.clientId ?? ctx.state.adminClientId;
  return typeof id === 'string' ? id : undefined;
}

/**
 * Counts and times every request, counts protocol outcomes (token errors, introspection and
 * revocation results), and writes one access-log line with the request id, the client's address
 * (as the app sees it: X-Forwarded-For only with TRUST_PROXY) and the authenticated client. The
 * query string is never logged: it can carry codes and tokens.
 */
export function observeRequests(metrics: Metrics, logger: Logger, issuerPath: string): Koa.Middleware {
  const record = requestRecorder(metrics, logger, issuerPath);
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const route = routeOf(ctx.path, issuerPath);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      record(route, ctx.method, ctx.status, seconds, () => ({
        requestId: ctx.state.requestId, path: ctx.path, address: ctx.ip, clientId: authenticatedClient(ctx),
      }));
      countProtocolOutcome(metrics, route, ctx.method, ctx.status, ctx.body);
    }
  };
}

/** Counts the outcome of a token, introspection or revocation request (a limit's 429 is counted as such). */
export function countProtocolOutcome(metrics: Metrics, route: string, method: string, status: number, body: unknown): void {
  if (method !== 'POST' || status === 429) return;
  if (route === '/token' && status >= 400) metrics.tokenErrors.inc({ error: errorCode(body) });
  if (route === '/token/introspection') {
    const active = (body as { active?: unknown } | undefined)?.active;
    metrics.introspections.inc({ result: status !== 200 ? 'error' : active === true ? 'active' : 'inactive' });
  }
  if (route === '/token/revocation') metrics.revocations.inc({ result: status === 200 ? 'ok' : 'error' });
}

/** What the access-log line says of a request besides its route, method and status. */
export interface AccessLogFields {
  requestId: string;
  /** Without the query. */
  path: string;
  address: string;
  clientId: string | undefined;
}

/**
 * Counts and times one answered request and writes its access-log line (observeRequests, and the
 * decision endpoint, which answers before Koa): the same metrics and the same line for both. The
 * line's fields are gathered only for a line that is written.
 */
export function requestRecorder(metrics: Metrics, logger: Logger, issuerPath: string) {
  return (route: string, method: string, status: number, seconds: number, fields: () => AccessLogFields): void => {
    const labels = { route, method, status: String(status) };
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, seconds);
    const level = status === 500 ? 'error' : status >= 500 ? 'warn' : 'info';
    if (!logger.isLevelEnabled(level)) return;
    const { requestId, path, address, clientId } = fields();
    logger[level]({
      requestId, method, path: loggedPath(path, issuerPath), route, status, ms: Math.round(seconds * 10_000) / 10, address, clientId,
    }, 'request');
  };
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * GET /metrics on the public listener: openly in development (nothing else configured), behind
 * `Authorization: Bearer METRICS_TOKEN` when set, else not at all (404 from later middleware).
 */
export function metricsEndpoint(metrics: Metrics, access: { open: boolean; token: string | undefined }): Koa.Middleware {
  const expected = access.token ? digest(access.token) : undefined;
  return async (ctx, next) => {
    if (ctx.path !== '/metrics' || ctx.method !== 'GET' || (!access.open && !expected)) return next();
    if (expected) {
      const [scheme, presented] = ctx.get('authorization').split(' ');
      if (scheme?.toLowerCase() !== 'bearer' || !presented || !timingSafeEqual(digest(presented), expected)) {
        ctx.status = 401;
        ctx.set('WWW-Authenticate', 'Bearer realm="metrics"');
        ctx.set('Cache-Control', 'no-store');
        ctx.body = { error: 'invalid_token', error_description: 'metrics need the metrics bearer token' };
        return;
      }
    }
    ctx.set('Content-Type', metrics.registry.contentType);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await metrics.registry.metrics();
  };
}
