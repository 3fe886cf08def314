// The admin API over HTTP: a router built from the route table, behind Bearer-token checks, with
// strict JSON bodies. Served under /admin/v1 by the public app, or by a listener of its own.
import type { IncomingMessage } from 'node:http';
import Router from '@koa/router';
import type Koa from 'koa';
import compose from 'koa-compose';
import getRawBody from 'raw-body';
import type { z } from 'zod';
import type { Logger } from '../../platform/logger.ts';
import { auditAs, type Actor, type AuditSink } from '../../domain/audit-events.ts';
import { STRICT_ROUTING } from '../../domain/endpoints.ts';
import { POSTERN_API } from '../../services/admin.ts';
import { createKoaApp } from '../koa-app.ts';
import { noCachePragma, requestId } from '../middleware.ts';
import { findUncleanHeader, findUncleanUrl } from '../request-guard.ts';
import { decodeCleanUtf8, isCleanJson } from '../../domain/text.ts';
import { AdminError, adminErrors, fromZodError } from './errors.ts';
import { ADMIN_PREFIX, buildOpenApiDocument, requiredScope } from './openapi.ts';
import { ADMIN_ROUTES, type AdminDeps, type AdminRoute } from './routes.ts';

/** Who calls the admin API: the client a token was issued to, and the person for a person's token. */
export interface AdminCaller {
  clientId: string;
  userId?: string;
  /** The token's scopes that the caller still holds now (not merely those written in the token). */
  scopes: string[];
}

/**
 * Checks a Bearer token for `audience`, presented with this request (whose client certificate a
 * certificate-bound token must match); resolves its caller when it is usable.
 */
export type VerifyAccessToken = (token: string, audience: string, request: IncomingMessage) =>
  Promise<AdminCaller | undefined>;

export interface AdminApiDeps {
  db: AdminDeps['db'];
  /** Where audit events go (app.ts passes the AuditLog): refusals, and each request's changes. */
  audit: AuditSink;
  logger: Logger;
  issuer: string;
  maxBodyBytes: number;
  verifyAccessToken: VerifyAccessToken;
  /** TLS_CLIENT_CERT_HEADER, when a proxy forwards client certificates (checked like any input). */
  certificateHeader?: string;
  /** Development allows trusted issuers on plain http loopback URLs. */
  issuerRules?: AdminDeps['issuerRules'];
}

// RFC 6750 §3: how a resource server says what was wrong with the token.
const challenge = (error: string, scope?: string) =>
  `Bearer realm="postern-admin", error="${error}"${scope ? `, scope="${scope}"` : ''}`;

/**
 * Who the audit log names for a caller: the person, with the app they used, for a person's token;
 * else the client.
 */
function actorOf(caller: Pick<AdminCaller, 'clientId' | 'userId'> | undefined): { actor: Actor; clientId?: string } {
  if (!caller) return { actor: { type: 'anonymous' } };
  if (caller.userId) return { actor: { type: 'user', id: caller.userId }, clientId: caller.clientId };
  return { actor: { type: 'client', id: caller.clientId } };
}

function authenticate(route: AdminRoute, verify: VerifyAccessToken, auditLog: AuditSink): Koa.Middleware {
  const scope = requiredScope(route);
  return async (ctx, next) => {
    const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(ctx.get('authorization'));
    const caller = match ? await verify(match[1]!, POSTERN_API, ctx.req) : undefined;
    const denied = (reason: 'invalid_token' | 'insufficient_scope', status: number) => auditLog.record({
      type: 'admin.access_denied',
      ...actorOf(caller),
      outcome: 'failure',
      sourceAddress: ctx.ip,
      requestId: ctx.state.requestId,
      // A 401 is counted by reason, status, method and route only (domain/audit-events.ts), so
      // scopes never reach its row whatever this says.
      // Stryker disable next-line ConditionalExpression: see above.
      details: { reason, status, method: ctx.method, route: `${route.method.toUpperCase()} ${route.path}`, ...(reason === 'insufficient_scope' ? { scopes: [scope] } : {}) },
    });
    if (!caller) {
      denied('invalid_token', 401);
      throw new AdminError('invalid_token', 'a valid Postern access token for urn:postern is required', {
        // RFC 6750 §3.1: no error code when the request carried no token at all.
        headers: { 'WWW-Authenticate': match ? challenge('invalid_token') : 'Bearer realm="postern-admin"' },
      });
    }
    // Authorised against what the caller holds now, not what the token says it held.
    if (!caller.scopes.includes(scope)) {
      denied('insufficient_scope', 403);
      throw new AdminError('insufficient_scope', `this request needs the ${scope} scope`, {
        headers: { 'WWW-Authenticate': challenge('insufficient_scope', scope) },
      });
    }
    ctx.state.adminClientId = caller.clientId;
    ctx.state.adminUserId = caller.userId;
    await next();
  };
}

/** The JSON body: 415 unless it is JSON, 413 past the limit, 400 unless it parses. None: {}. */
async function readJson(ctx: Koa.Context, maxBytes: number): Promise<unknown> {
  const length = ctx.get('content-length');
  const hasBody = ctx.get('transfer-encoding') !== '' || Number(length || 0) > 0;
  if (!hasBody) return {};
  if (!ctx.is('application/json') || !['', 'identity'].includes(ctx.get('content-encoding'))) {
    throw new AdminError('unsupported_media_type', 'the request body must be application/json');
  }
  let raw: Buffer;
  try {
    raw = await getRawBody(ctx.req, { length: length || undefined, limit: maxBytes });
  } catch (error) {
    if ((error as { type?: string }).type === 'entity.too.large') {
      ctx.set('Connection', 'close');
      throw new AdminError('payload_too_large', `request body exceeds ${maxBytes} bytes`);
    }
    throw new AdminError('invalid_input', 'the request body could not be read', { fields: ['body'] });
  }
  // NUL bytes and invalid UTF-8 never reach the services (Postgres refuses NUL in text, and
  // \u0000 or a lone surrogate in jsonb: a server error otherwise).
  const text = decodeCleanUtf8(raw);
  if (text === undefined) throw new AdminError('invalid_input', 'the request body is not UTF-8 text without NUL bytes', { fields: ['body'] });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AdminError('invalid_input', 'the request body is not valid JSON', { fields: ['body'] });
  }
  if (!isCleanJson(parsed)) throw new AdminError('invalid_input', 'a string in the body holds a NUL (\\u0000) or a lone surrogate', { fields: ['body'] });
  return parsed;
}

/** The path, query and headers: no NUL byte, no invalid UTF-8 (the body is checked as it is read). */
function refuseUncleanInput(certificateHeader: string | undefined): Koa.Middleware {
  return async (ctx, next) => {
    const url = findUncleanUrl(ctx);
    const problem = url ?? findUncleanHeader((name) => ctx.get(name), certificateHeader);
    if (problem) throw new AdminError('invalid_input', problem, { fields: [url ? (url.includes('path') ? 'path' : 'query') : 'headers'] });
    await next();
  };
}

function parse(schema: z.ZodType | undefined, value: unknown, where: 'path' | 'query' | 'body'): unknown {
  if (!schema) return undefined;
  const result = schema.safeParse(value);
  if (!result.success) throw fromZodError(result.error, where);
  return result.data;
}

function handler(route: AdminRoute, deps: AdminApiDeps & Omit<AdminDeps, 'audit'>): Koa.Middleware {
  return async (ctx) => {
    const params = parse(route.params, ctx.params, 'path');
    const query = parse(route.query, ctx.query, 'query');
    const body = parse(route.body, route.body ? await readJson(ctx, deps.maxBodyBytes) : undefined, 'body');
    const audit = auditAs(deps.audit, {
      ...actorOf(ctx.state.adminClientId ? { clientId: ctx.state.adminClientId, userId: ctx.state.adminUserId } : undefined),
      sourceAddress: ctx.ip,
      requestId: ctx.state.requestId,
    });
    const result = await route.handle({ params, query, body } as never, { ...deps, audit });
    ctx.set('Cache-Control', 'no-store');
    ctx.status = route.status;
    if (route.status !== 204) ctx.body = result;
  };
}

/** /apis/{id} -> /apis/:id */
export const toRouterPath = (path: string) => path.replace(/\{(\w+)\}/g, ':$1');

export function adminRouter(deps: AdminApiDeps): Router {
  let document: Record<string, unknown> | undefined;
  const full: AdminApiDeps & Omit<AdminDeps, 'audit'> = {
    ...deps,
    openApiDocument: () => (document ??= buildOpenApiDocument(deps.issuer)),
  };
  const router = new Router({ prefix: ADMIN_PREFIX, ...STRICT_ROUTING });
  for (const route of ADMIN_ROUTES) {
    const stack = route.public ? [handler(route, full)] : [authenticate(route, deps.verifyAccessToken, deps.audit), handler(route, full)];
    router[route.method](toRouterPath(route.path), ...stack);
  }
  return router;
}

/**
 * The admin API as one middleware: answers everything under /admin (unknown paths with a JSON
 * 404, known paths with the wrong method with 405), and passes anything else on.
 */
export function adminApi(deps: AdminApiDeps): { router: Router; middleware: Koa.Middleware } {
  const router = adminRouter(deps);
  const methodNotAllowed = () => new AdminError('method_not_allowed', 'this endpoint does not take that method');
  const stack = compose([
    adminErrors(deps.logger),
    refuseUncleanInput(deps.certificateHeader),
    router.routes(),
    router.allowedMethods({ throw: true, methodNotAllowed, notImplemented: methodNotAllowed }),
  ] as Koa.Middleware[]);
  const middleware: Koa.Middleware = (ctx, next) =>
    (ctx.path === '/admin' || ctx.path.startsWith('/admin/') ? stack(ctx, async () => {}) : next());
  return { router, middleware };
}

/** A Koa app serving only the admin API, for the separate listener (ADMIN_PORT). */
export function adminApp(middleware: Koa.Middleware, options: { proxy: boolean; keys?: string[] }): Koa {
  // Built as the public app is: the same proxy trust, so ctx.ip (audited) means the same; the
  // same cookie keys (the console's cookies are signed).
  const koa = createKoaApp({ trustProxy: options.proxy, keys: options.keys });
  koa.use(requestId());
  koa.use(noCachePragma());
  koa.use(async (ctx, next) => {
    await middleware(ctx, next);
    // Off the admin prefix there is nothing here.
    if (ctx.body === undefined && ctx.status === 404) {
      ctx.status = 404; // explicitly: Koa would make a body without a set status a 200
      ctx.body = { error: 'not_found', message: 'no such endpoint', requestId: ctx.state.requestId };
    }
  });
  return koa;
}
