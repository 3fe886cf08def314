// The route matcher and the requirement check of domain/routes.ts, pure: every case of the
// matching order in docs/routes.md, and the spellings an attacker would try.
import { describe, expect, it } from 'vitest';
import { parsePathPattern, normalizeRouteHost, normalizeRouteMethod } from '../src/domain/route-patterns.ts';
import { evaluateRule, findConflict, matchRoute, RouteTable, type RouteCaller, type RouteRule } from '../src/domain/routes.ts';

let next = 0;
function rule(path: string, more: Partial<RouteRule> = {}): RouteRule {
  next += 1;
  return {
    id: more.id ?? `r${String(next).padStart(3, '0')}`,
    api: 'https://orders.internal',
    host: 'orders.example',
    methods: [],
    path,
    public: false,
    scopesAll: [],
    scopesAny: [],
    roles: [],
    clients: [],
    senderConstrained: null,
    rateLimitPerMinute: null,
    cacheSeconds: null,
    ...more,
  };
}

function winner(rules: RouteRule[], method: string, path: string, host: string | null = 'orders.example'): string | null {
  const result = matchRoute(rules, { host, method, path });
  return result.rule ? result.rule.path + (result.rule.methods.length ? ` ${result.rule.methods.join(',')}` : '') : result.reason;
}

describe('path patterns', () => {
  it('parses exact, {param} and trailing * patterns', () => {
    expect(parsePathPattern('/orders/{id}')).toMatchObject({ prefix: false, literalCount: 1, shape: '/orders/{}' });
    expect(parsePathPattern('/orders/*')).toMatchObject({ prefix: true, literalCount: 1, shape: '/orders/*' });
    expect(parsePathPattern('/')).toMatchObject({ prefix: false, literalCount: 1, shape: '/' });
  });

  it.each([
    ['orders', 'starts with /'],
    ['/orders*', '* is a whole segment'],
    ['/*/orders', 'only be the last'],
    ['/orders//x', 'empty segments'],
    ['/orders/{id}/{id}', 'appears twice'],
    ['/orders/{1d}', 'is not a parameter'],
    ['/orders/{id', 'is not a parameter'],
    ['/orders/%2e%2e', 'characters'],
    ['/orders/../admin', '. or ..'],
    ['/orders/./x', '. or ..'],
    ['/orders?x=1', 'characters'],
    ['/órders', 'characters'],
    ['/a b', 'characters'],
  ])('refuses %s', (pattern, message) => {
    const parsed = parsePathPattern(pattern);
    expect('error' in parsed && parsed.error).toContain(message);
  });

  it('normalises hosts and methods', () => {
    expect(normalizeRouteHost('Orders.Example')).toBe('orders.example');
    expect(normalizeRouteHost('orders.example:8443')).toBe('orders.example:8443');
    expect(normalizeRouteHost('[::1]:8443')).toBe('[::1]:8443');
    expect(normalizeRouteHost('orders.example:99999')).toBeUndefined();
    expect(normalizeRouteHost('https://orders.example')).toBeUndefined();
    expect(normalizeRouteHost('orders.example/x')).toBeUndefined();
    expect(normalizeRouteHost('')).toBeUndefined();
    expect(normalizeRouteMethod('get')).toBe('GET');
    expect(normalizeRouteMethod('M-SEARCH')).toBe('M-SEARCH');
    expect(normalizeRouteMethod('GET /')).toBeUndefined();
    expect(normalizeRouteMethod('')).toBeUndefined();
  });
});

describe('matchRoute', () => {
  it('matches exact paths segment by segment: a trailing slash is another path', () => {
    const rules = [rule('/orders')];
    expect(winner(rules, 'GET', '/orders')).toBe('/orders');
    expect(winner(rules, 'GET', '/orders/')).toBe('no-rule-matched');
    expect(winner(rules, 'GET', '/Orders')).toBe('no-rule-matched');
    expect(winner(rules, 'GET', '/orders/7')).toBe('no-rule-matched');
    expect(winner(rules, 'GET', '/ordersx')).toBe('no-rule-matched');
    expect(winner([rule('/orders/')], 'GET', '/orders/')).toBe('/orders/');
    expect(winner([rule('/orders/')], 'GET', '/orders')).toBe('no-rule-matched');
  });

  it('{param} takes exactly one non-empty segment', () => {
    const rules = [rule('/orders/{id}')];
    expect(winner(rules, 'GET', '/orders/7')).toBe('/orders/{id}');
    expect(winner(rules, 'GET', '/orders/')).toBe('no-rule-matched');
    expect(winner(rules, 'GET', '/orders')).toBe('no-rule-matched');
    expect(winner(rules, 'GET', '/orders/7/items')).toBe('no-rule-matched');
    expect(winner(rules, 'GET', '/orders/7/')).toBe('no-rule-matched');
    expect(winner(rules, 'GET', '/orders//')).toBe('no-rule-matched');
    expect(winner([rule('/{a}/{b}')], 'GET', '//x')).toBe('no-rule-matched');
  });

  it('* takes the rest after its slash, never the parent itself', () => {
    const rules = [rule('/orders/*')];
    expect(winner(rules, 'GET', '/orders/')).toBe('/orders/*');
    expect(winner(rules, 'GET', '/orders/7')).toBe('/orders/*');
    expect(winner(rules, 'GET', '/orders/7/items/3')).toBe('/orders/*');
    expect(winner(rules, 'GET', '/orders')).toBe('no-rule-matched');
    expect(winner(rules, 'GET', '/orders-admin/1')).toBe('no-rule-matched');
    expect(winner([rule('/*')], 'GET', '/')).toBe('/*');
    expect(winner([rule('/*')], 'GET', '/anything/at/all')).toBe('/*');
  });

  it('refuses paths that are not absolute', () => {
    expect(winner([rule('/*')], 'GET', 'orders')).toBe('no-rule-matched');
    expect(winner([rule('/*')], 'GET', '')).toBe('no-rule-matched');
  });

  it('the most specific rule wins, whatever order the rules come in', () => {
    const rules = [
      rule('/*', { id: 'a' }),
      rule('/orders/*', { id: 'b' }),
      rule('/orders/{id}', { id: 'c' }),
      rule('/orders/export', { id: 'd' }),
      rule('/orders/{id}/items/*', { id: 'e' }),
      rule('/{tenant}/items/{id}', { id: 'f' }),
      rule('/orders/{id}/{sub}', { id: 'g' }),
    ];
    for (const order of [rules, [...rules].reverse()]) {
      expect(winner(order, 'GET', '/orders/export')).toBe('/orders/export');
      expect(winner(order, 'GET', '/orders/7')).toBe('/orders/{id}');
      expect(winner(order, 'GET', '/orders/7/items')).toBe('/orders/{id}/{sub}'); // exact before prefix
      expect(winner(order, 'GET', '/orders/7/items/3')).toBe('/orders/{id}/items/*');
      expect(winner(order, 'GET', '/orders/items/3')).toBe('/orders/{id}/{sub}'); // 1 literal each; the literal further left
      expect(winner(order, 'GET', '/orders/7/x/y/z')).toBe('/orders/*');
      expect(winner(order, 'GET', '/shop/items/3')).toBe('/{tenant}/items/{id}');
      expect(winner(order, 'GET', '/health')).toBe('/*');
    }
  });

  it('an exact rule with fewer literals still beats a prefix', () => {
    const rules = [rule('/a/b/*'), rule('/a/{x}/{y}')];
    expect(winner(rules, 'GET', '/a/b/c')).toBe('/a/{x}/{y}');
    expect(winner(rules, 'GET', '/a/b/c/d')).toBe('/a/b/*');
  });

  it('equal literal counts: a literal further left wins', () => {
    const rules = [rule('/{x}/b/c'), rule('/a/{y}/c')];
    expect(winner(rules, 'GET', '/a/b/c')).toBe('/a/{y}/c');
    expect(winner([...rules].reverse(), 'GET', '/a/b/c')).toBe('/a/{y}/c');
  });

  it('a longer prefix wins over a shorter one', () => {
    const rules = [rule('/{x}/*'), rule('/{x}/{y}/*')];
    expect(winner(rules, 'GET', '/a/b/c')).toBe('/{x}/{y}/*');
  });

  it('a rule for the method wins over a rule for any method; methods are case-sensitive', () => {
    const rules = [rule('/orders/{id}'), rule('/orders/{id}', { methods: ['DELETE'] })];
    expect(winner(rules, 'DELETE', '/orders/7')).toBe('/orders/{id} DELETE');
    expect(winner(rules, 'GET', '/orders/7')).toBe('/orders/{id}');
    // RFC 9110 §9.1: "delete" is another method; only the any-method rule covers it.
    expect(winner(rules, 'delete', '/orders/7')).toBe('/orders/{id}');
    expect(winner([rule('/orders', { methods: ['GET'] })], 'get', '/orders')).toBe('no-rule-matched');
    expect(winner([rule('/orders', { methods: ['GET'] })], 'HEAD', '/orders')).toBe('no-rule-matched');
  });

  it('a specific path for any method beats a vaguer path for the method', () => {
    const rules = [rule('/orders/*', { methods: ['GET'] }), rule('/orders/{id}')];
    expect(winner(rules, 'GET', '/orders/7')).toBe('/orders/{id}');
  });

  it('host rules before any-host rules; hosts compare lowercased, the port is part of the host', () => {
    const rules = [
      rule('/*', { host: null, id: 'any' }),
      rule('/orders/{id}', { host: null, id: 'any2' }),
      rule('/orders/*', { host: 'orders.example' }),
      rule('/admin', { host: 'orders.example:8443' }),
    ];
    expect(winner(rules, 'GET', '/orders/7')).toBe('/orders/*');
    expect(winner(rules, 'GET', '/orders/7', 'ORDERS.example')).toBe('/orders/*');
    expect(winner(rules, 'GET', '/orders/7', 'other.example')).toBe('/orders/{id}');
    expect(winner(rules, 'GET', '/health', null)).toBe('/*');
    expect(winner(rules, 'GET', '/admin', 'orders.example:8443')).toBe('/admin');
    expect(winner(rules, 'GET', '/admin', 'orders.example')).toBe('/*');
  });

  it('default deny: a host with rules refuses what none covers; a host without rules is reported', () => {
    const rules = [rule('/orders/{id}', { methods: ['GET'] })];
    expect(winner(rules, 'DELETE', '/orders/7')).toBe('no-rule-matched');
    expect(winner(rules, 'GET', '/orders/7', 'orders.example:8443')).toBe('no-rules-for-host');
    expect(winner(rules, 'GET', '/orders/7', null)).toBe('no-rules-for-host');
    expect(winner([], 'GET', '/')).toBe('no-rules-for-host');
  });

  it('a tie that slipped past the write check goes to the lower id, in any order', () => {
    const a = rule('/orders/{id}', { id: 'b-2' });
    const b = rule('/orders/{key}', { id: 'a-1' });
    expect(new RouteTable([a, b]).match({ host: 'orders.example', method: 'GET', path: '/orders/1' }).rule?.id).toBe('a-1');
    expect(new RouteTable([b, a]).match({ host: 'orders.example', method: 'GET', path: '/orders/1' }).rule?.id).toBe('a-1');
  });

  it('lists a host rules in the order they are tried', () => {
    const table = new RouteTable([rule('/*', { host: null }), rule('/orders/*'), rule('/orders/{id}')]);
    expect(table.rulesFor('orders.example').map((each) => each.path)).toEqual(['/orders/{id}', '/orders/*', '/*']);
    expect(table.size).toBe(3);
  });
});

describe('findConflict', () => {
  it('refuses two rules with the same host, path shape and a method in common', () => {
    const existing = [rule('/orders/{id}', { methods: ['GET', 'PUT'] })];
    expect(findConflict(existing, rule('/orders/{key}', { methods: ['PUT'] }))).toBe(existing[0]);
    expect(findConflict(existing, rule('/orders/{key}'))).toBe(existing[0]);
    expect(findConflict(existing, rule('/orders/{key}', { methods: ['DELETE'] }))).toBeUndefined();
    expect(findConflict(existing, rule('/orders/{key}', { host: null }))).toBeUndefined();
    expect(findConflict(existing, rule('/orders/*'))).toBeUndefined();
    expect(findConflict(existing, rule('/orders/{id}', { host: 'ORDERS.EXAMPLE', methods: ['GET'] }))).toBe(existing[0]);
    // Updating a rule does not conflict with itself.
    expect(findConflict(existing, { ...existing[0]!, methods: ['GET'] })).toBeUndefined();
  });
});

describe('evaluateRule', () => {
  const caller: RouteCaller = {
    clientId: 'billing',
    subject: null,
    scopes: ['orders:read'],
    roles: ['reader'],
    audiences: ['https://orders.internal'],
    senderConstrained: null,
  };

  it('public rules need nothing; others need a token for their API', () => {
    expect(evaluateRule(rule('/', { public: true }), null)).toEqual({ allow: true });
    expect(evaluateRule(rule('/'), null)).toMatchObject({ allow: false, status: 401, error: 'invalid_token' });
    expect(evaluateRule(rule('/'), caller)).toEqual({ allow: true });
    expect(evaluateRule(rule('/', { api: 'https://billing.internal' }), caller)).toMatchObject({ status: 401, why: 'the token is not for https://billing.internal' });
  });

  it('scopes: all of, any of; names the scope missing', () => {
    expect(evaluateRule(rule('/', { scopesAll: ['orders:read'] }), caller)).toEqual({ allow: true });
    expect(evaluateRule(rule('/', { scopesAll: ['orders:read', 'orders:write'] }), caller))
      .toMatchObject({ allow: false, status: 403, error: 'insufficient_scope', neededScope: 'orders:read orders:write', why: 'the token lacks the scope orders:write' });
    expect(evaluateRule(rule('/', { scopesAny: ['orders:write', 'orders:read'] }), caller)).toEqual({ allow: true });
    expect(evaluateRule(rule('/', { scopesAny: ['orders:write', 'orders:admin'] }), caller))
      .toMatchObject({ status: 403, error: 'insufficient_scope', neededScope: 'orders:write' });
  });

  it('roles and clients: one of each list', () => {
    expect(evaluateRule(rule('/', { roles: ['admin', 'reader'] }), caller)).toEqual({ allow: true });
    expect(evaluateRule(rule('/', { roles: ['admin'] }), caller)).toMatchObject({ status: 403, error: 'access_denied' });
    expect(evaluateRule(rule('/', { clients: ['billing'] }), caller)).toEqual({ allow: true });
    expect(evaluateRule(rule('/', { clients: ['shipping'] }), caller)).toMatchObject({ status: 403, error: 'access_denied' });
    expect(evaluateRule(rule('/', { roles: ['reader'], clients: ['shipping'] }), caller)).toMatchObject({ allow: false });
  });

  it('sender constraints', () => {
    const dpop = { ...caller, senderConstrained: 'dpop' as const };
    const mtls = { ...caller, senderConstrained: 'mtls' as const };
    expect(evaluateRule(rule('/', { senderConstrained: 'dpop' }), caller)).toMatchObject({ status: 401, why: 'this route needs a DPoP-bound token' });
    expect(evaluateRule(rule('/', { senderConstrained: 'dpop' }), mtls)).toMatchObject({ status: 401 });
    expect(evaluateRule(rule('/', { senderConstrained: 'dpop' }), dpop)).toEqual({ allow: true });
    expect(evaluateRule(rule('/', { senderConstrained: 'mtls' }), mtls)).toEqual({ allow: true });
    expect(evaluateRule(rule('/', { senderConstrained: 'any' }), mtls)).toEqual({ allow: true });
    expect(evaluateRule(rule('/', { senderConstrained: 'any' }), caller)).toMatchObject({ status: 401 });
  });
});
