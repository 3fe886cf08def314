// The decision of the gateway endpoint (docs/gateways.md): may this original request pass? The
// route rule that matches it names the API and what a caller needs; the token says who calls,
// with what they hold now. Allow is exactly 200 (Envoy allows on nothing else) with the caller's
// identity for the upstream; deny is 401 (no usable token, a missing one included: always
// `error="invalid_token"`, see below), 403 (the rule says no) or 429 (over the rule's limit for
// this client). Denials are audited as counts per client, rule and minute, never one row per
// request.
import type { AuditSink } from '../domain/audit-events.ts';
import type { GateCaller, GateTokenRequest, GateTokenResult, OriginalRequest } from '../domain/gate-request.ts';
import { evaluateRule, type RouteMatch, type RouteRequest, type RouteRule } from '../domain/routes.ts';
import type { Limiter } from './rate-limits.ts';

/** The route rules, compiled: a RouteTable (domain/routes.ts), kept current per process. */
export interface GateRoutes {
  match(request: RouteRequest): RouteMatch;
}

export interface GateDeps {
  routes: GateRoutes;
  checkToken(request: GateTokenRequest): Promise<GateTokenResult>;
  /** The limiter of rules allowing `points` requests a minute, per rule and client. */
  routeLimiter(points: number): Limiter;
  audit: AuditSink;
  now?: () => number;
}

export type GateOutcome = 'allow' | 'no_route' | 'no_token' | 'invalid_token' | 'forbidden' | 'rate_limited' | 'unavailable';

export interface GateDecision {
  status: 200 | 401 | 403 | 429 | 503;
  /** A bounded label: the rule's id, or `none`. */
  route: string;
  outcome: GateOutcome;
  headers: Record<string, string>;
  body: { error: string; error_description?: string } | undefined;
}

/** The original request's token material, as the gateway passed it on. */
export interface PresentedCredentials {
  authorization: string | undefined;
  dpop: string | string[] | undefined;
  certificateThumbprint: string | undefined;
}

/** Headers the upstream reads the caller from (docs/gateways.md). */
export const IDENTITY_HEADERS = {
  clientId: 'X-Postern-Client-Id',
  subject: 'X-Postern-Subject',
  scope: 'X-Postern-Scope',
  roles: 'X-Postern-Roles',
  /** The actor chain of a delegated (exchanged) token (RFC 8693 §4.1), outermost first, space-separated. */
  actors: 'X-Postern-Actor',
} as const;

/** A value fit for a quoted-string of WWW-Authenticate (RFC 6750 §3: %x20-21 / %x23-5B / %x5D-7E). */
const quoted = (value: string) => value.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '').slice(0, 200);

function challenge(scheme: string, fields: Record<string, string | undefined>): string {
  const parts = Object.entries(fields).filter(([, value]) => value !== undefined).map(([name, value]) => `${name}="${quoted(value!)}"`);
  return parts.length ? `${scheme} ${parts.join(', ')}` : scheme;
}

/**
 * The identity headers of an allow, every one of them always (empty for an anonymous caller of a
 * public route): a gateway copying them then replaces whatever the client sent under these names
 * (Caddy 2.6 would otherwise pass a placeholder's text for a header missing from the answer).
 */
function identity(caller: GateCaller | undefined): Record<string, string> {
  return {
    [IDENTITY_HEADERS.clientId]: caller?.clientId ?? '',
    [IDENTITY_HEADERS.subject]: caller?.subject ?? '',
    [IDENTITY_HEADERS.scope]: caller?.scopes.join(' ') ?? '',
    [IDENTITY_HEADERS.roles]: caller?.roles.join(' ') ?? '',
    [IDENTITY_HEADERS.actors]: caller?.actors.join(' ') ?? '',
  };
}

/**
 * Cache-Control of an allow: no-store unless the rule allows caching, and then never past the
 * token's expiry. A cached allow outlives a revocation by up to that long (docs/gateways.md).
 */
function cacheControl(rule: RouteRule, expiresAt: number | undefined, now: number): string {
  if (!rule.cacheSeconds) return 'no-store';
  const left = expiresAt === undefined ? rule.cacheSeconds : Math.min(rule.cacheSeconds, expiresAt - Math.floor(now / 1000));
  return left > 0 ? `private, max-age=${left}` : 'no-store';
}

/** The rule for the request: by its host as sent (with a port other than the default), else its name alone. */
function matchRule(routes: GateRoutes, original: OriginalRequest): RouteMatch {
  const request = { host: original.host, method: original.method, path: original.path };
  const matched = routes.match(request);
  if (matched.rule === null && matched.reason === 'no-rules-for-host' && original.host !== original.hostname) {
    return routes.match({ ...request, host: original.hostname });
  }
  return matched;
}

export async function decide(
  deps: GateDeps, original: OriginalRequest, presented: PresentedCredentials,
): Promise<GateDecision> {
  const now = (deps.now ?? Date.now)();
  const denied = (decision: Omit<GateDecision, 'headers'> & { headers?: Record<string, string> }, clientId?: string): GateDecision => {
    deps.audit.record({
      type: 'gate.denied', outcome: 'failure', clientId: clientId ?? null,
      details: { route: decision.route, status: decision.status, error: decision.body?.error, reason: decision.outcome },
    });
    return { ...decision, headers: { 'Cache-Control': 'no-store', ...decision.headers } };
  };
  let matched: RouteMatch;
  try {
    matched = matchRule(deps.routes, original);
  } catch {
    // The rules could not be loaded (services/live-routes.ts): fail closed, never guess.
    return denied({
      status: 503, route: 'none', outcome: 'unavailable', headers: { 'Retry-After': '1' },
      body: { error: 'temporarily_unavailable', error_description: 'route policies are not loaded' },
    });
  }
  if (matched.rule === null) {
    const { reason } = matched;
    return denied({
      status: 403, route: 'none', outcome: 'no_route',
      body: { error: 'access_denied', error_description: `no route rule lets ${original.method} ${original.path} through (${reason})` },
    });
  }
  const { rule } = matched;
  const result = presented.authorization || !rule.public
    ? await deps.checkToken({ ...presented, audience: rule.api, method: original.method, url: `${original.scheme}://${original.host}${original.path}` })
    : undefined;
  if (rule.public) {
    // Open to anyone; a usable token still tells the upstream who calls.
    const headers = identity(result?.ok ? result.caller : undefined);
    return { status: 200, route: rule.id, outcome: 'allow', headers: { ...headers, 'Cache-Control': cacheControl(rule, undefined, now) }, body: undefined };
  }
  if (!result!.ok) {
    const refused = result as Extract<GateTokenResult, { ok: false }>;
    const { scheme, error = 'invalid_token', description = 'an access token is required' } = refused;
    // A missing token gets invalid_token too. RFC 6750 §3.1 suggests no error code then; the
    // gateway contract wants one error for every 401 (docs/gateways.md, Answers), so that a
    // client behind any gateway reads the same challenge whatever was wrong with its token.
    return denied({
      status: 401, route: rule.id, outcome: refused.error ? 'invalid_token' : 'no_token',
      headers: { 'WWW-Authenticate': challenge(scheme, { error, error_description: description }) },
      body: { error, error_description: description },
    });
  }
  const { caller } = result as Extract<GateTokenResult, { ok: true }>;
  // The token was checked for this rule's API: that is its audience here.
  const verdict = evaluateRule(rule, { ...caller, audiences: [rule.api] });
  if (!verdict.allow) {
    // RFC 6750 §3.1 names invalid_token and insufficient_scope; access_denied goes in the body only.
    const rfc6750 = verdict.error !== 'access_denied';
    return denied({
      status: verdict.status, route: rule.id, outcome: 'forbidden',
      headers: rfc6750 ? { 'WWW-Authenticate': challenge(caller.senderConstrained === 'dpop' ? 'DPoP' : 'Bearer', { error: verdict.error, error_description: verdict.why, scope: verdict.neededScope }) } : {},
      body: { error: verdict.error, error_description: verdict.why },
    }, caller.clientId);
  }
  if (rule.rateLimitPerMinute) {
    // A failing shared store lets the request through: the limit protects the API, it must not
    // take it down (as the protocol endpoints' limits).
    const limit = await deps.routeLimiter(rule.rateLimitPerMinute).consume(`${rule.id}:${caller.clientId}`)
      .catch(() => ({ allowed: true }) as const);
    if (!limit.allowed) {
      return denied({
        status: 429, route: rule.id, outcome: 'rate_limited',
        headers: { 'Retry-After': String(limit.retryAfterSeconds) },
        body: { error: 'rate_limited', error_description: `over this route's limit of ${rule.rateLimitPerMinute} requests a minute` },
      }, caller.clientId);
    }
  }
  return {
    status: 200, route: rule.id, outcome: 'allow',
    headers: { ...identity(caller), 'Cache-Control': cacheControl(rule, caller.expiresAt, now) }, body: undefined,
  };
}
