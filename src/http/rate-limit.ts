// Request limits in front of the protocol endpoints (token, introspection, revocation: per client
// and per source address), of registration and sign-in (per address), and of the authorization
// and logout endpoints (per address). Over a limit: 429 with Retry-After (RFC 6585 §4) and an
// RFC 6749-style JSON error body, or a page for a person's browser.
import type Koa from 'koa';
import { escapeRegExp, INTERACTION_PATH, PROVIDER_ROUTES } from '../domain/endpoints.ts';
import { isRandomId } from '../domain/crypto.ts';
import type { Logger } from '../platform/logger.ts';
import type { Metrics } from '../platform/metrics.ts';
import { peekBody } from '../platform/peek-body.ts';
import type { LimitResult, RequestLimiters } from '../services/rate-limits.ts';
import { detach } from '../domain/text.ts';

/** RFC 6749 §2.3.1: Basic credentials are form-encoded before base64. */
function formDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/**
 * The client_id a request presents (Basic credentials, else client_id in a form body), unverified:
 * the limit applies to whoever claims the id. Only a small form body of declared length is read.
 */
async function presentedClientId(
  ctx: Koa.Context,
  maxBodyBytes: number,
  clientOfAssertion?: (assertion: string) => Promise<string | undefined>,
): Promise<string | undefined> {
  const authorization = ctx.get('authorization');
  let id: string | undefined;
  if (authorization) {
    const [scheme, value] = authorization.split(' ');
    if (scheme?.toLowerCase() !== 'basic' || !value) return undefined;
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    id = colon > 0 ? formDecode(decoded.slice(0, colon)) : undefined;
  } else {
    const length = Number(ctx.get('content-length'));
    if (!ctx.is('application/x-www-form-urlencoded') || !(length > 0 && length <= maxBodyBytes)) return undefined;
    const body = await peekBody(ctx.req, length);
    const params = body ? new URLSearchParams(body.toString('utf8')) : undefined;
    id = params?.get('client_id') ?? undefined;
    // A workload's platform token names its client by the binding of its issuer and subject.
    const assertion = params?.get('client_assertion');
    if (id === undefined && assertion && clientOfAssertion) id = await clientOfAssertion(assertion).catch(() => undefined);
  }
  // Counters and the back-off map are keyed by it: only an id that could be a client's (the
  // provider refuses any other as invalid_client), and a copy that does not hold the request.
  return isRandomId(id) ? detach(id) : undefined;
}

function tooManyRequests(ctx: Koa.Context, result: Extract<LimitResult, { allowed: false }>): void {
  ctx.status = 429;
  ctx.set('Retry-After', String(result.retryAfterSeconds));
  ctx.set('Cache-Control', 'no-store');
  // RFC 6749 has no code for this; temporarily_unavailable (§4.1.2.1) is the one that means it.
  ctx.body = {
    error: 'temporarily_unavailable',
    error_description: `too many requests; retry after ${result.retryAfterSeconds} s`,
  };
}

export interface RateLimitDeps {
  limiters: RequestLimiters;
  issuerPath: string;
  maxBodyBytes: number;
  metrics: Metrics;
  logger: Logger;
  /**
   * Answers a person's browser over a limit (sign-in pages, authorization, logout) with a page
   * instead of JSON; 429 and Retry-After are set already.
   */
  pageRefused?(ctx: Koa.Context, retryAfterSeconds: number): void;
  /**
   * Whether a client id names a client. Per-client counters are kept for those only: an id that
   * names nobody is the caller's free choice, and counting it would keep one entry per made-up id
   * (the address limit still applies to such requests).
   */
  isKnownClient(clientId: string): Promise<boolean>;
  /** The client a client assertion without client_id names (federated clients), unverified. */
  clientOfAssertion?(assertion: string): Promise<string | undefined>;
}

type LimitedEndpoint = 'protocol' | 'registration' | 'sign_in' | 'authorize';

/**
 * Which limited endpoint a request will reach, if any. Paths compare exactly: no router serves
 * another spelling of them (src/domain/endpoints.ts), so no spelling escapes its limit.
 */
function limitedEndpoints(issuerPath: string): (method: string, path: string) => LimitedEndpoint | undefined {
  const { token, introspection, revocation, registration, authorization, end_session: endSession } = PROVIDER_ROUTES;
  const protocol = new Set([token, introspection, revocation].map((path) => `${issuerPath}${path}`));
  // Each may store a row for a caller with no credentials at all: an Interaction (RFC 6749 §4.1.1
  // requests), a Session holding the logout form's anti-forgery value. Every method counts.
  const authorize = new Set([authorization, endSession, `${endSession}/confirm`].map((path) => `${issuerPath}${path}`));
  // The form posts of src/http/interactions.ts; the uid is whatever the router would take.
  const signIn = new RegExp(`^${escapeRegExp(`${issuerPath}${INTERACTION_PATH}`)}/[^/]+/(?:login|confirm|abort)$`);
  return (method, path) => {
    if (authorize.has(path)) return 'authorize';
    if (method !== 'POST') return undefined;
    if (protocol.has(path)) return 'protocol';
    if (path === `${issuerPath}${registration}`) return 'registration';
    return signIn.test(path) ? 'sign_in' : undefined;
  };
}

/** Client ids in back-off, remembered by this process (bounded). */
const MAX_BACKED_OFF = 10_000;

export function rateLimits(deps: RateLimitDeps): Koa.Middleware {
  const { limiters, issuerPath, metrics, logger } = deps;
  // Set when counting an invalid_client finds the client_id over the limit. Kept here rather
  // than read from the shared store on every request: that would cost a query per request for
  // the rare case. Another process learns of the back-off at the next failure it sees itself.
  const backedOff = new Map<string, number>();
  const backOffLeft = (clientId: string): number => {
    const until = backedOff.get(clientId);
    if (until === undefined) return 0;
    if (until <= Date.now()) {
      backedOff.delete(clientId);
      return 0;
    }
    return Math.ceil((until - Date.now()) / 1000);
  };
  const limited = limitedEndpoints(issuerPath);
  // A failing limiter lets the request through (and says so): the limits protect the service,
  // they must not take it down.
  const limit = async (what: string, run: () => Promise<LimitResult>): Promise<LimitResult> => {
    try {
      const result = await run();
      if (!result.allowed) metrics.rateLimited.inc({ limiter: what });
      return result;
    } catch (error) {
      logger.warn({ err: error, limiter: what }, 'rate limiter failed; request let through');
      return { allowed: true };
    }
  };

  return async (ctx, next) => {
    const endpoint = limited(ctx.method, ctx.path);
    if (endpoint === undefined) return next();
    if (endpoint !== 'protocol') {
      const result = endpoint === 'authorize'
        ? await limit('authorize_address', () => limiters.authorizeAddress.consume(detach(ctx.ip)))
        : await limit('sign_in_address', () => limiters.signInAddress.consume(detach(ctx.ip)));
      if (result.allowed) return next();
      tooManyRequests(ctx, result);
      // A person's browser gets a page; registration clients get the JSON.
      if (endpoint !== 'registration' && deps.pageRefused) deps.pageRefused(ctx, result.retryAfterSeconds);
      return undefined;
    }

    const presented = await presentedClientId(ctx, deps.maxBodyBytes, deps.clientOfAssertion);
    const clientId = presented !== undefined && await deps.isKnownClient(presented).catch(() => false) ? presented : undefined;
    if (clientId !== undefined) {
      const left = backOffLeft(clientId);
      if (left > 0) {
        metrics.rateLimited.inc({ limiter: 'invalid_client' });
        return tooManyRequests(ctx, { allowed: false, retryAfterSeconds: left });
      }
    }
    // Both counters at once: each is a round trip to the shared store.
    const [byAddress, byClient] = await Promise.all([
      limit('address', () => limiters.address.consume(detach(ctx.ip))),
      clientId === undefined ? { allowed: true } as const : limit('client', () => limiters.client(clientId).consume(clientId)),
    ]);
    if (!byAddress.allowed) return tooManyRequests(ctx, byAddress);
    if (!byClient.allowed) return tooManyRequests(ctx, byClient);
    await next();
    const body = ctx.body as { error?: unknown } | undefined;
    if (clientId !== undefined && ctx.status === 401 && body?.error === 'invalid_client') {
      // RFC 6749 §2.3.1: endpoints taking client passwords must resist brute force; repeated
      // failed authentication for one client_id backs off.
      const counted = await limiters.invalidClient.consume(clientId).catch((error: unknown) => {
        logger.warn({ err: error }, 'rate limiter failed to count an invalid_client');
        return { allowed: true } as const;
      });
      if (!counted.allowed) {
        if (backedOff.size >= MAX_BACKED_OFF) backedOff.delete(backedOff.keys().next().value!);
        backedOff.set(clientId, Date.now() + counted.retryAfterSeconds * 1000);
      }
    }
  };
}
