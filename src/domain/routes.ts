// Route policies: which rule covers a request to an API, and whether a caller meets it.
// Pure computation; the rules come from the store (services/routes.ts) and every process keeps
// a compiled table of them current (propagation/ feeds oidc/route-table.ts).
//
// Matching order ("the most specific rule wins"), docs/routes.md:
//   1. rules for the request's host before rules for any host;
//   2. an exact path before a prefix (`*`);
//   3. more literal segments first, then more segments;
//   4. segment by segment from the left: a literal before a {param} before `*`;
//   5. a rule naming the method before a rule for any method;
// Two rules that would still tie (same host, same path shape, a method in common) are refused
// when written (findConflict); the rule id breaks a tie that a race let through, so the answer
// is the same in every process.
import { comparePatterns, matchesPath, parsePathPattern, type PathPattern } from './route-patterns.ts';

export type SenderConstraint = 'dpop' | 'mtls' | 'any';

export interface RouteRule {
  id: string;
  /** The API's resource indicator, e.g. https://orders.internal */
  api: string;
  /** Lowercased host (with port if given), or null for any host. */
  host: string | null;
  /** Uppercase; empty means any method. */
  methods: string[];
  /** exact, {param} segments, trailing * prefix (route-patterns.ts) */
  path: string;
  /** No token needed. */
  public: boolean;
  scopesAll: string[];
  scopesAny: string[];
  roles: string[];
  clients: string[];
  senderConstrained: SenderConstraint | null;
  /** Per client, optional. */
  rateLimitPerMinute: number | null;
  /** How long a gateway may cache an allow, optional. */
  cacheSeconds: number | null;
}

export type RouteMatch =
  | { rule: RouteRule }
  | { rule: null; reason: 'no-rules-for-host' | 'no-rule-matched' };

export interface RouteRequest {
  host: string | null;
  method: string;
  path: string;
}

interface CompiledRule {
  rule: RouteRule;
  pattern: PathPattern;
  methods: ReadonlySet<string>;
}

/** Orders rules that could cover one request; negative when a wins. Steps 1 to 5 above, then the id. */
function compareRules(a: CompiledRule, b: CompiledRule): number {
  if ((a.rule.host === null) !== (b.rule.host === null)) return a.rule.host === null ? 1 : -1;
  const byPath = comparePatterns(a.pattern, b.pattern);
  if (byPath !== 0) return byPath;
  if ((a.methods.size === 0) !== (b.methods.size === 0)) return a.methods.size === 0 ? 1 : -1;
  return a.rule.id < b.rule.id ? -1 : a.rule.id > b.rule.id ? 1 : 0;
}

function compile(rule: RouteRule): CompiledRule | undefined {
  const pattern = parsePathPattern(rule.path);
  // A stored rule was validated when written; one that no longer parses covers nothing.
  if ('error' in pattern) return undefined;
  return { rule, pattern, methods: new Set(rule.methods) };
}

/** The host as the table keys it: lowercase (RFC 3986 §3.2.2: hosts are case-insensitive). */
function hostKey(host: string | null): string | null {
  return host === null ? null : host.toLowerCase();
}

/**
 * Rules compiled and ordered once, matched per request. Rules for a host, most specific first,
 * then the rules for any host; the first that covers the request wins.
 */
export class RouteTable {
  readonly size: number;
  private readonly byHost = new Map<string, CompiledRule[]>();
  private readonly anyHost: CompiledRule[];

  constructor(rules: readonly RouteRule[]) {
    const compiled = rules.map(compile).filter((each): each is CompiledRule => each !== undefined);
    this.size = compiled.length;
    this.anyHost = compiled.filter((each) => each.rule.host === null).sort(compareRules);
    for (const each of compiled) {
      if (each.rule.host === null) continue;
      const key = each.rule.host.toLowerCase();
      const list = this.byHost.get(key) ?? [];
      list.push(each);
      this.byHost.set(key, list);
    }
    for (const [host, list] of this.byHost) this.byHost.set(host, [...list.sort(compareRules), ...this.anyHost]);
  }

  match(request: RouteRequest): RouteMatch {
    const host = hostKey(request.host);
    const candidates = (host === null ? undefined : this.byHost.get(host)) ?? this.anyHost;
    if (candidates.length === 0) return { rule: null, reason: 'no-rules-for-host' };
    // RFC 9110 §9.1: the method token is case-sensitive; "get" is not GET and matches only rules
    // for any method.
    const method = request.method;
    for (const candidate of candidates) {
      if (candidate.methods.size > 0 && !candidate.methods.has(method)) continue;
      if (matchesPath(candidate.pattern, request.path)) return { rule: candidate.rule };
    }
    return { rule: null, reason: 'no-rule-matched' };
  }

  /** The host's rules in the order they are tried (docs and `routes list`). */
  rulesFor(host: string | null): RouteRule[] {
    const key = hostKey(host);
    return ((key === null ? undefined : this.byHost.get(key)) ?? this.anyHost).map((each) => each.rule);
  }
}

export function matchRoute(rules: readonly RouteRule[], request: RouteRequest): RouteMatch {
  return new RouteTable(rules).match(request);
}

/**
 * The existing rule a new or changed one would tie with, if any: same host (or both any host),
 * the same path shape ({param} names do not count) and a method in common (no methods is every
 * method). Such a pair has no most specific rule, so the write is refused.
 */
export function findConflict(existing: readonly RouteRule[], candidate: RouteRule): RouteRule | undefined {
  const mine = parsePathPattern(candidate.path);
  if ('error' in mine) return undefined;
  const host = hostKey(candidate.host);
  return existing.find((other) => {
    if (other.id === candidate.id || hostKey(other.host) !== host) return false;
    const theirs = parsePathPattern(other.path);
    if ('error' in theirs || theirs.shape !== mine.shape) return false;
    if (other.methods.length === 0 || candidate.methods.length === 0) return true;
    return other.methods.some((method) => candidate.methods.includes(method));
  });
}

/** Who is calling, as the gateway established it from a validated token. */
export interface RouteCaller {
  clientId: string;
  subject: string | null;
  /** The token's scopes (already limited to what its grant allows). */
  scopes: readonly string[];
  /** CURRENT roles from grants, not from token claims. */
  roles: readonly string[];
  /** The token's audiences (resource indicators); a rule requires its own API among them. */
  audiences: readonly string[];
  senderConstrained: 'dpop' | 'mtls' | null;
}

export type RouteDecision =
  | { allow: true }
  | { allow: false; status: 401 | 403; error: 'invalid_token' | 'insufficient_scope' | 'access_denied'; neededScope?: string; why: string };

/**
 * Whether a caller meets a rule. `caller` is null when the request carries no token.
 * Every requirement the rule names must hold: all of scopesAll, one of scopesAny, one of roles,
 * one of clients, and the sender constraint. RFC 6750 §3.1: a missing or unfit token is 401
 * invalid_token (the gateway endpoint says so for a missing token too: docs/gateways.md), a token without
 * the scope is 403 insufficient_scope, and a caller the rule does not admit is 403 access_denied.
 */
export function evaluateRule(rule: RouteRule, caller: RouteCaller | null): RouteDecision {
  if (rule.public) return { allow: true };
  if (caller === null) return { allow: false, status: 401, error: 'invalid_token', why: 'this route needs an access token' };
  if (!caller.audiences.includes(rule.api)) {
    return { allow: false, status: 401, error: 'invalid_token', why: `the token is not for ${rule.api}` };
  }
  const sender = rule.senderConstrained;
  if (sender !== null && (caller.senderConstrained === null || (sender !== 'any' && caller.senderConstrained !== sender))) {
    const wanted = sender === 'any' ? 'a sender-constrained (DPoP or mTLS)' : sender === 'dpop' ? 'a DPoP-bound' : 'an mTLS-bound';
    return { allow: false, status: 401, error: 'invalid_token', why: `this route needs ${wanted} token` };
  }
  for (const scope of rule.scopesAll) {
    if (!caller.scopes.includes(scope)) {
      return { allow: false, status: 403, error: 'insufficient_scope', neededScope: rule.scopesAll.join(' '), why: `the token lacks the scope ${scope}` };
    }
  }
  if (rule.scopesAny.length > 0 && !rule.scopesAny.some((scope) => caller.scopes.includes(scope))) {
    return {
      allow: false,
      status: 403,
      error: 'insufficient_scope',
      neededScope: rule.scopesAny[0]!,
      why: `the token has none of the scopes ${rule.scopesAny.join(', ')}`,
    };
  }
  if (rule.roles.length > 0 && !rule.roles.some((role) => caller.roles.includes(role))) {
    return { allow: false, status: 403, error: 'access_denied', why: `the caller holds none of the roles ${rule.roles.join(', ')}` };
  }
  if (rule.clients.length > 0 && !rule.clients.includes(caller.clientId)) {
    return { allow: false, status: 403, error: 'access_denied', why: `the client ${caller.clientId} is not one this route admits` };
  }
  return { allow: true };
}
