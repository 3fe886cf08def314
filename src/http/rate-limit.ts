// Request limits in front of every path the provider and the sign-in pages serve (see
// limitedEndpoint below for which limit each path gets, and which few are left out and why).
// Over a limit: 429 with Retry-After (RFC 6585 §4) and an RFC 6749-style JSON error body, or a
// page for a person's browser. Addresses are counted by addressBucket (an IPv6 /64, an IPv4
// address), so one host cannot spread itself over many counters.
import type { IncomingMessage } from 'node:http';
import type Koa from 'koa';
import { escapeRegExp, INTERACTION_PATH, isProviderPath, PROVIDER_ROUTES } from '../domain/endpoints.ts';
import { isRandomId } from '../domain/crypto.ts';
import { addressBucket } from '../domain/networks.ts';
import type { Logger } from '../platform/logger.ts';
import type { Metrics } from '../platform/metrics.ts';
import { peekFormParams } from '../platform/peek-body.ts';
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
 * the limit applies to whoever claims the id. The body is read however it is framed (declared
 * length or chunked), up to the body limit: leaving the length out must not skip the limits.
 */
async function presentedClientId(
  req: IncomingMessage,
  maxBodyBytes: number,
  clientOfAssertion?: (assertion: string) => Promise<string | undefined>,
): Promise<string | undefined> {
  const authorization = req.headers.authorization;
  let id: string | undefined;
  if (authorization) {
    const [scheme, value] = authorization.split(' ');
    if (scheme?.toLowerCase() !== 'basic' || !value) return undefined;
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    id = colon > 0 ? formDecode(decoded.slice(0, colon)) : undefined;
  } else {
    const params = await peekFormParams(req, maxBodyBytes);
    id = params?.get('client_id') ?? undefined;
    // A workload's platform token names its client by the binding of its issuer and subject.
    const assertion = params?.get('client_assertion');
    if (id === undefined && assertion && clientOfAssertion) id = await clientOfAssertion(assertion).catch(() => undefined);
  }
  // Counters and the back-off map are keyed by it: only an id that could be a client's (the
  // provider refuses any other as invalid_client), and a copy that does not hold the request.
  return isRandomId(id) ? detach(id) : undefined;
}

/**
 * The client the request authenticated as: the provider's client (it is set before the
 * credentials are checked, so only when the answer is not invalid_client), or the one the
 * introspection fast path authenticated.
 */
function authenticatedAs(ctx: Koa.Context): string | undefined {
  const id = (ctx as { oidc?: { client?: { clientId?: unknown } } }).oidc?.client?.clientId ?? ctx.state.clientId;
  return typeof id === 'string' ? id : undefined;
}

/** The answer over a limit: 429 with Retry-After (RFC 6585 §4), as JSON. */
export function tooManyRequestsAnswer(result: Refused): { status: number; headers: Record<string, string>; body: Record<string, unknown> } {
  return {
    status: 429,
    headers: { 'Retry-After': String(result.retryAfterSeconds), 'Cache-Control': 'no-store' },
    // RFC 6749 has no code for this; temporarily_unavailable (§4.1.2.1) is the one that means it.
    body: { error: 'temporarily_unavailable', error_description: `too many requests; retry after ${result.retryAfterSeconds} s` },
  };
}

function tooManyRequests(ctx: Koa.Context, result: Refused): void {
  const answer = tooManyRequestsAnswer(result);
  ctx.status = answer.status;
  for (const [name, value] of Object.entries(answer.headers)) ctx.set(name, value);
  ctx.body = answer.body;
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

/**
 * - `protocol`: token, introspection, revocation and pushed authorization requests (RFC 9126):
 *   client authentication, so per address, per presented client and the invalid_client back-off.
 * - `registration`, `sign_in`: per address, in the small bucket of forms a person or a new client
 *   posts (passwords, initial access tokens).
 * - `authorize`: per address, each may store a row for a caller with no credentials.
 * - `address`: every other path served (userinfo, registration management, the resume of an
 *   authorization, the sign-in page, logout's last page, other methods on the paths above): per
 *   address only. Each may look something up in the database for whatever the caller sends.
 */
type LimitedEndpoint = 'protocol' | 'registration' | 'sign_in' | 'authorize' | 'address';

interface Limited {
  endpoint: LimitedEndpoint;
  /** Also counted in the authorization endpoint's bucket: it creates authorization state. */
  authorizes: boolean;
  /** Shown in a person's browser: refused with a page rather than JSON. */
  page: boolean;
}

/**
 * Which limits a request meets, if any. Paths compare exactly: no router serves another spelling
 * of them (src/domain/endpoints.ts), so no spelling escapes its limit; and every path the provider
 * or the sign-in pages serve is limited unless it is listed in `exempt`.
 */
function limitedEndpoints(issuerPath: string): (method: string, path: string) => Limited | undefined {
  const {
    token, introspection, revocation, registration, authorization, end_session: endSession, jwks,
    pushed_authorization_request: pushed,
  } = PROVIDER_ROUTES;
  const under = (paths: string[]) => new Set(paths.map((path) => `${issuerPath}${path}`));
  const protocol = under([token, introspection, revocation, pushed]);
  // RFC 9126 §2: a pushed request is stored (PushedAuthorizationRequest) like an authorization
  // request, so it also counts where those do.
  const pushedPath = `${issuerPath}${pushed}`;
  // Each may store a row for a caller with no credentials at all: an Interaction (RFC 6749 §4.1.1
  // requests), a Session holding the logout form's anti-forgery value. Every method counts.
  const authorize = under([authorization, endSession, `${endSession}/confirm`]);
  // Answered from memory, the same for everyone, and fetched by every resource server and client
  // (often on start, all at once): limiting them would only refuse the ones that verify tokens.
  // Everything else isProviderPath lets through is limited, so a path served tomorrow is limited
  // by default. (Device authorization and CIBA are not enabled: their paths are not served.)
  const exempt = under([jwks, '/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']);
  // The sign-in page and its form posts (src/http/interactions.ts); the uid is whatever the
  // router would take.
  const interactions = `${issuerPath}${INTERACTION_PATH}/`;
  const signInPage = new RegExp(`^${escapeRegExp(interactions)}[^/]+$`);
  const signIn = new RegExp(`^${escapeRegExp(interactions)}[^/]+/(?:login|confirm|abort)$`);
  const pages = [`${issuerPath}${authorization}/`, `${issuerPath}${endSession}/`, interactions];
  const isPage = (path: string) => authorize.has(path) || pages.some((prefix) => path.startsWith(prefix));
  return (method, path) => {
    const limited = (endpoint: LimitedEndpoint): Limited => ({ endpoint, authorizes: path === pushedPath, page: isPage(path) });
    if (authorize.has(path)) return limited('authorize');
    if (method === 'POST') {
      if (protocol.has(path)) return limited('protocol');
      if (path === `${issuerPath}${registration}`) return limited('registration');
      if (signIn.test(path)) return limited('sign_in');
    }
    if (exempt.has(path)) return undefined;
    return isProviderPath(path, issuerPath) || signInPage.test(path) ? limited('address') : undefined;
  };
}

/** (client, address) pairs in back-off, remembered by this process (bounded). */
const MAX_BACKED_OFF = 10_000;

type Refused = Extract<LimitResult, { allowed: false }>;

/** What admitting a protocol request took, for settling it once it is answered. */
export interface Admission {
  /** The known client the request presented: it took from that client's allowance. */
  clientId: string | undefined;
  /** Where a failed authentication of that client from this address is counted. */
  backOffKey: string | undefined;
}

/** Admitted (with what to settle, none for a request that only counts per address), or refused. */
export type AdmitResult = { admission: Admission | undefined } | { refused: Refused; page: boolean };

/** How a request was answered, as settling it needs to know. */
export interface Outcome {
  status: number;
  body: unknown;
  /** The client the request authenticated as, if any. */
  authenticatedAs: string | undefined;
}

export interface RequestLimits {
  /** The limits in Koa's middleware chain. */
  middleware: Koa.Middleware;
  /**
   * Counts a request against its limits, as the middleware does, for a request answered before
   * Koa (http/protocol-lane.ts); undefined when no limit applies to it.
   */
  admit(method: string, path: string, req: IncomingMessage, address: string): Promise<AdmitResult | undefined>;
  /** After the answer to an admitted request: gives back what it took, counts a failed authentication. */
  settle(admission: Admission, outcome: Outcome): Promise<void>;
  /** A request admitted before Koa goes on to Koa after all: the middleware settles it, never counts it again. */
  handOver(req: IncomingMessage, admission: Admission | undefined): void;
}

export function requestLimits(deps: RateLimitDeps): RequestLimits {
  const { limiters, issuerPath, metrics, logger } = deps;
  // Set when counting an invalid_client finds the (client_id, address) pair over the limit. Kept
  // here rather than read from the shared store on every request: that would cost a query per
  // request for the rare case. Another process learns of the back-off at the next failure it
  // sees itself.
  const backedOff = new Map<string, number>();
  const backOffLeft = (key: string): number => {
    const until = backedOff.get(key);
    if (until === undefined) return 0;
    if (until <= Date.now()) {
      backedOff.delete(key);
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
  const giveBack = (clientId: string) => limiters.client(clientId).refund(clientId).catch((error: unknown) => {
    logger.warn({ err: error }, 'rate limiter failed to give back a request');
  });

  const admitLimited = async (request: Limited, req: IncomingMessage, ip: string): Promise<AdmitResult> => {
    const address = detach(addressBucket(ip));
    const { endpoint } = request;
    if (endpoint !== 'protocol') {
      const result = endpoint === 'authorize'
        ? await limit('authorize_address', () => limiters.authorizeAddress.consume(address))
        : endpoint === 'address'
          ? await limit('address', () => limiters.address.consume(address))
          : await limit('sign_in_address', () => limiters.signInAddress.consume(address));
      return result.allowed ? { admission: undefined } : { refused: result, page: request.page };
    }

    // The address first: a flood of requests must be refused before it costs a client lookup.
    const byAddress = await limit('address', () => limiters.address.consume(address));
    if (!byAddress.allowed) return { refused: byAddress, page: request.page };
    if (request.authorizes) {
      const result = await limit('authorize_address', () => limiters.authorizeAddress.consume(address));
      if (!result.allowed) return { refused: result, page: request.page };
    }
    const presented = await presentedClientId(req, deps.maxBodyBytes, deps.clientOfAssertion);
    const clientId = presented !== undefined && await deps.isKnownClient(presented).catch(() => false) ? presented : undefined;
    // The back-off belongs to the client as seen from this address only: failures from elsewhere
    // (anyone may present a client_id) must not lock the client itself out (docs/security.md).
    const backOffKey = clientId === undefined ? undefined : `${clientId} ${address}`;
    if (backOffKey !== undefined) {
      const left = backOffLeft(backOffKey);
      if (left > 0) {
        metrics.rateLimited.inc({ limiter: 'invalid_client' });
        return { refused: { allowed: false, retryAfterSeconds: left }, page: false };
      }
    }
    const byClient = clientId === undefined ? { allowed: true } as const : await limit('client', () => limiters.client(clientId).consume(clientId));
    // The per-client limit keeps the requests the client itself made: anyone may present its id,
    // so a refused request, and one that fails to authenticate, is given back. Otherwise a flood
    // presenting the id (wrong secrets, or none) would use up the real client's allowance.
    if (!byClient.allowed) {
      await giveBack(clientId!);
      return { refused: byClient, page: false };
    }
    return { admission: { clientId, backOffKey } };
  };

  const settle = async ({ clientId, backOffKey }: Admission, outcome: Outcome): Promise<void> => {
    const failed = outcome.status === 401 && (outcome.body as { error?: unknown } | undefined)?.error === 'invalid_client';
    if (clientId !== undefined && (failed || outcome.authenticatedAs !== clientId)) await giveBack(clientId);
    if (backOffKey !== undefined && failed) {
      // RFC 6749 §2.3.1: endpoints taking client passwords must resist brute force; repeated
      // failed authentication for one client_id from one address backs off.
      const counted = await limiters.invalidClient.consume(backOffKey).catch((error: unknown) => {
        logger.warn({ err: error }, 'rate limiter failed to count an invalid_client');
        return { allowed: true } as const;
      });
      if (!counted.allowed) {
        if (backedOff.size >= MAX_BACKED_OFF) backedOff.delete(backedOff.keys().next().value!);
        backedOff.set(backOffKey, Date.now() + counted.retryAfterSeconds * 1000);
      }
    }
  };

  /** Requests admitted before Koa and handed over to it: the request object is the key. */
  const handedOver = new WeakMap<IncomingMessage, Admission | undefined>();

  const middleware: Koa.Middleware = async (ctx, next) => {
    let admitted: AdmitResult;
    if (handedOver.has(ctx.req)) {
      admitted = { admission: handedOver.get(ctx.req) };
      handedOver.delete(ctx.req);
    } else {
      const request = limited(ctx.method, ctx.path);
      if (request === undefined) return next();
      admitted = await admitLimited(request, ctx.req, ctx.ip);
    }
    if ('refused' in admitted) {
      tooManyRequests(ctx, admitted.refused);
      // A person's browser gets a page; clients get the JSON.
      if (admitted.page && deps.pageRefused) deps.pageRefused(ctx, admitted.refused.retryAfterSeconds);
      return undefined;
    }
    await next();
    if (admitted.admission) await settle(admitted.admission, { status: ctx.status, body: ctx.body, authenticatedAs: authenticatedAs(ctx) });
    return undefined;
  };

  return {
    middleware,
    admit: async (method, path, req, address) => {
      const request = limited(method, path);
      return request === undefined ? undefined : admitLimited(request, req, address);
    },
    settle,
    handOver: (req, admission) => { handedOver.set(req, admission); },
  };
}

/** The limits as Koa middleware alone. */
export function rateLimits(deps: RateLimitDeps): Koa.Middleware {
  return requestLimits(deps).middleware;
}
