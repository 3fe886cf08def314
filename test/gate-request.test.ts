// The gateway contracts and the path normalisation of the decision endpoint, as pure functions:
// every trick that could carry a request past a rule for another path.
import { describe, expect, it } from 'vitest';
import { gateContractOf, normalizeGatePath, readOriginalRequest } from '../src/domain/gate-request.ts';

const path = (raw: string) => {
  const result = normalizeGatePath(raw);
  return 'path' in result ? result.path : `refused: ${result.description}`;
};

describe('normalizeGatePath', () => {
  it('keeps a plain path and drops the query and fragment', () => {
    expect(path('/orders/42')).toBe('/orders/42');
    expect(path('/orders/42?admin=1#x')).toBe('/orders/42');
    expect(path('/orders?/admin')).toBe('/orders');
    expect(path('/')).toBe('/');
  });

  it('resolves dot segments, plain or percent-encoded', () => {
    expect(path('/public/../admin')).toBe('/admin');
    expect(path('/public/%2e%2e/admin')).toBe('/admin');
    expect(path('/public/%2E%2E/admin')).toBe('/admin');
    expect(path('/public/.%2e/admin')).toBe('/admin');
    expect(path('/./admin/./x')).toBe('/admin/x');
    expect(path('/admin/.')).toBe('/admin/');
    expect(path('/admin/x/..')).toBe('/admin/');
  });

  it('merges doubled slashes and decodes unreserved characters', () => {
    expect(path('//admin')).toBe('/admin');
    expect(path('/public//..//admin')).toBe('/admin');
    expect(path('/%61dmin')).toBe('/admin');
    expect(path('/%7euser/%41')).toBe('/~user/A');
  });

  it('keeps reserved and non-ASCII escapes encoded, in upper case', () => {
    expect(path('/a%3fb')).toBe('/a%3Fb');
    expect(path('/caf%c3%a9')).toBe('/caf%C3%A9');
    expect(path('/a%25b')).toBe('/a%25b');
  });

  it('refuses encoded slashes, backslashes and NUL, raw backslashes and broken escapes', () => {
    for (const raw of ['/public%2Fadmin', '/public%2fadmin', '/public%5Cadmin', '/public\\admin', '/a%00', '/a%zz', '/a%2', '/a b', '/caf\u00e9']) {
      expect(path(raw), raw).toMatch(/^refused/);
    }
  });

  it('refuses a path climbing above the root, and one not starting with "/"', () => {
    expect(path('/..')).toMatch(/^refused/);
    expect(path('/a/../../admin')).toMatch(/^refused/);
    expect(path('admin')).toMatch(/^refused/);
    expect(path('http://evil/admin')).toMatch(/^refused/);
  });
});

describe('readOriginalRequest', () => {
  const headers = (values: Record<string, string>) => (name: string) => values[name];

  it('reads nginx auth_request headers', () => {
    expect(readOriginalRequest('auth-request', 'GET', headers({
      'x-original-method': 'POST', 'x-original-uri': '/orders/../admin?x=1', host: 'postern', 'x-forwarded-host': 'API.example:8443', 'x-forwarded-proto': 'https',
    }), '')).toEqual({ method: 'POST', scheme: 'https', host: 'api.example:8443', hostname: 'api.example', path: '/admin' });
  });

  it('reads Traefik and Caddy forward-auth headers, and only on GET', () => {
    const sent = headers({ 'x-forwarded-method': 'DELETE', 'x-forwarded-uri': '/orders/1', 'x-forwarded-host': 'api.example', 'x-forwarded-proto': 'http' });
    expect(readOriginalRequest('forward-auth', 'GET', sent, '')).toEqual({ method: 'DELETE', scheme: 'http', host: 'api.example', hostname: 'api.example', path: '/orders/1' });
    expect(readOriginalRequest('forward-auth', 'POST', sent, '')).toMatchObject({ error: 'bad_gateway_request' });
  });

  it('reads Envoy ext_authz: the method itself and the path after the prefix', () => {
    expect(readOriginalRequest('ext-authz', 'PUT', headers({ host: 'api.example' }), '/orders/%2e%2e/admin')).toMatchObject({ method: 'PUT', path: '/admin', hostname: 'api.example' });
  });

  it('refuses a request missing what its contract needs', () => {
    expect(readOriginalRequest('auth-request', 'GET', headers({ 'x-original-uri': '/', host: 'a' }), '')).toMatchObject({ error: 'bad_gateway_request' });
    expect(readOriginalRequest('auth-request', 'GET', headers({ 'x-original-method': 'GET', host: 'a' }), '')).toMatchObject({ error: 'bad_gateway_request' });
    expect(readOriginalRequest('forward-auth', 'GET', headers({ 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/' }), '')).toMatchObject({ error: 'bad_gateway_request' });
    expect(readOriginalRequest('auth-request', 'GET', headers({ 'x-original-method': 'get x', 'x-original-uri': '/', host: 'a' }), '')).toMatchObject({ error: 'bad_gateway_request' });
    expect(readOriginalRequest('auth-request', 'GET', headers({ 'x-original-method': 'GET', 'x-original-uri': '/', host: 'a/b' }), '')).toMatchObject({ error: 'bad_gateway_request' });
    expect(readOriginalRequest('auth-request', 'GET', headers({ 'x-original-method': 'GET', 'x-original-uri': '/', host: 'a', 'x-forwarded-proto': 'ftp' }), '')).toMatchObject({ error: 'bad_gateway_request' });
  });
});

describe('gateContractOf', () => {
  it('knows each contract by its exact path only', () => {
    expect(gateContractOf('/gate/auth-request')).toEqual({ contract: 'auth-request', rest: '' });
    expect(gateContractOf('/gate/forward-auth')).toEqual({ contract: 'forward-auth', rest: '' });
    expect(gateContractOf('/gate/ext-authz/orders/1')).toEqual({ contract: 'ext-authz', rest: '/orders/1' });
    for (const other of ['/gate', '/GATE/auth-request', '/gate/auth-request/', '/gate//auth-request', '/gate/auth-request/x', '/gate/%61uth-request', '/gate/ext-authzx']) {
      expect(gateContractOf(other), other).toBeUndefined();
    }
  });
});
