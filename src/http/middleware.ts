// Middleware of the outer Koa app, around oidc-provider and Postern's own routes.
import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import type { Logger } from '../platform/logger.ts';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The id of a request: a sane one the caller sent is kept, for tracing; else a new one. */
export function requestIdOf(given: string | undefined): string {
  return given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();
}

/** Every response gets an x-request-id (a sane one from the caller is kept, for tracing). */
export function requestId(): Koa.Middleware {
  return async (ctx, next) => {
    ctx.state.requestId = requestIdOf(ctx.get('x-request-id'));
    ctx.set('x-request-id', ctx.state.requestId);
    await next();
  };
}

/** Whether a Cache-Control value says no-store: such a response also says Pragma: no-cache. */
export function isNoStore(cacheControl: string): boolean {
  return /(^|,)\s*no-store\s*(,|$)/i.test(cacheControl);
}

/**
 * RFC 6749 §5.1: a response carrying credentials says `Cache-Control: no-store` and, for HTTP/1.0
 * caches, `Pragma: no-cache`. Whoever answers (the provider, a fast path, the admin API, a limit,
 * an error) sets the first; this adds the second to every such response, whatever the route.
 */
export function noCachePragma(): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } finally {
      if (isNoStore(ctx.response.get('Cache-Control'))) ctx.set('Pragma', 'no-cache');
    }
  };
}

/** The body of a 500: the request id to quote, never what went wrong (that goes to the log). */
export function serverErrorBody(requestId: string): { error: string; error_description: string } {
  return { error: 'server_error', error_description: `unexpected error; quote request id ${requestId}` };
}

function jsonError(ctx: Koa.Context, status: number, error: string, description: string): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error, error_description: description };
}

/**
 * Last line of defence: whatever escapes answers as RFC 6749-style JSON with the request id, and
 * the stack goes to the log only.
 */
export function errorBoundary(logger: Logger): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const status = (error as { status?: number; expose?: boolean }).status;
      if (status && status >= 400 && status < 500 && (error as { expose?: boolean }).expose) {
        jsonError(ctx, status, 'invalid_request', (error as Error).message);
        return;
      }
      logger.error({ err: error, requestId: ctx.state.requestId, path: ctx.path }, 'unhandled error');
      const body = serverErrorBody(ctx.state.requestId);
      jsonError(ctx, 500, body.error, body.error_description);
    }
  };
}

/** Refuses bodies over the limit before anything reads them (413). */
export function bodyLimit(maxBytes: number): Koa.Middleware {
  return async (ctx, next) => {
    const length = Number(ctx.get('content-length') || 0);
    if (length > maxBytes) {
      jsonError(ctx, 413, 'invalid_request', `request body exceeds ${maxBytes} bytes`);
      ctx.set('Connection', 'close');
      return;
    }
    await next();
  };
}

/**
 * RFC 8414 metadata: the same document as OpenID discovery. For an issuer with a path, RFC 8414
 * §3 puts the well-known segment before the path.
 */
export function authorizationServerMetadataAlias(issuerPath: string): Koa.Middleware {
  const from = `/.well-known/oauth-authorization-server${issuerPath}`;
  const to = `${issuerPath}/.well-known/openid-configuration`;
  return async (ctx, next) => {
    if (ctx.path === from) ctx.path = to;
    await next();
  };
}

/** What nobody else answered. */
export function notFound(): Koa.Middleware {
  return async (ctx) => {
    jsonError(ctx, 404, 'not_found', 'no such endpoint');
  };
}

/**
 * Every absolute URL Postern and the provider build (discovery, redirects, registration URIs)
 * comes from ISSUER, never from the request: the Host header (and with TRUST_PROXY,
 * X-Forwarded-Host and X-Forwarded-Proto) is set to the issuer's before anything reads it, and an
 * absolute-form request target (`GET http://other/...`) is reduced to its path. A forged Host
 * could otherwise make discovery advertise another origin's endpoints to a cache.
 */
export function canonicalHost(issuer: string, trustProxy: boolean): Koa.Middleware {
  const { host, protocol } = new URL(issuer);
  const proto = protocol.slice(0, -1);
  return async (ctx, next) => {
    const headers = ctx.req.headers;
    headers.host = host;
    if (ctx.req.httpVersionMajor >= 2) headers[':authority'] = host;
    if (trustProxy) {
      headers['x-forwarded-host'] = host;
      headers['x-forwarded-proto'] = proto;
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ctx.req.url ?? '')) {
      const target = URL.parse(ctx.req.url!);
      ctx.req.url = target ? `${target.pathname}${target.search}` : '/';
      ctx.originalUrl = ctx.req.url;
      ctx.request.originalUrl = ctx.req.url;
    }
    await next();
  };
}
