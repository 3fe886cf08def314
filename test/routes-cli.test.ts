// `postern routes` as an operator runs it: child processes on a migrated store (Postgres with
// TEST_DATABASE_URL, else the embedded one). Tokens are checked in routes-propagation.test.ts
// (a server must issue them) and routes-admin.test.ts.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { cliCommands, field, useCliStore } from './support/cli.ts';
import { slowSuitesRunHere } from './support/database.ts';

const store = useCliStore('postern-routes-cli-');
const { cli, ok, json, refused } = cliCommands(() => store.env);
const API = 'https://orders.internal';

describe.runIf(slowSuitesRunHere)('postern routes', () => {
  it('creates, lists, shows, updates, checks and deletes rules', async () => {
    await ok(['apis', 'create', '--identifier', API, '--scopes', 'orders:read orders:write orders:admin']);
    await ok(['roles', 'create', 'order-admins', '--grant', `${API} orders:admin`]);

    const created = await ok(['routes', 'create', '--api', API, '--host', 'Orders.Example', '--method', 'get',
      '--path', '/orders/{id}', '--scope', 'orders:read', '--cache', '30s']);
    const id = field(created, 'id')!;
    expect(id).toMatch(/^route_/);
    expect(field(created, 'host')).toBe('orders.example');
    expect(field(created, 'methods')).toBe('GET');
    expect(field(created, 'needs')).toBe('scopes orders:read');
    expect(field(created, 'cache')).toBe('30s');

    const prefix = await json(['routes', 'create', '--api', API, '--host', 'orders.example', '--path', '/orders/*',
      '--any-scope', 'orders:write', '--any-scope', 'orders:admin', '--rate-limit', '600']);
    expect(prefix).toMatchObject({ scopesAny: ['orders:write', 'orders:admin'], methods: [], rateLimitPerMinute: 600 });
    const health = await json(['routes', 'create', '--api', API, '--path', '/healthz', '--public']);
    expect(health).toMatchObject({ host: null, public: true });

    const listed = await json(['routes', 'list', '--host', 'orders.example']);
    expect(listed.map((rule: { id: string }) => rule.id).sort()).toEqual([id, prefix.id].sort());
    expect(await ok(['routes', 'list'])).toMatch(/^ID\s+API\s+HOST\s+METHODS\s+PATH\s+NEEDS$/m);
    expect(field(await ok(['routes', 'show', id]), 'path')).toBe('/orders/{id}');

    // The exact rule for GET; the prefix for the rest; the host's other paths: default deny.
    const check = (method: string, url: string) => ok(['routes', 'check', '--method', method, '--url', url]);
    expect(field(await check('GET', 'https://orders.example/orders/7'), 'rule')).toContain(id);
    expect(field(await check('DELETE', 'https://orders.example/orders/7'), 'rule')).toContain(prefix.id);
    expect(field(await check('GET', 'https://orders.example/orders'), 'rule')).toBe('none (no-rule-matched)');
    expect(field(await check('GET', 'https://orders.example/orders'), 'decision')).toMatch(/^deny \(403 access_denied\)/);
    expect(field(await check('GET', 'https://other.example/healthz'), 'decision')).toBe('allow');
    expect(field(await check('GET', 'https://orders.example/orders/7'), 'decision')).toBe('deny (401 invalid_token): this route needs an access token');

    const updated = await json(['routes', 'update', id, '--method', 'GET', '--method', 'HEAD', '--role', 'order-admins']);
    expect(updated).toMatchObject({ methods: ['GET', 'HEAD'], roles: ['order-admins'], scopesAll: ['orders:read'], cacheSeconds: 30 });
    const cleared = await json(['routes', 'update', id, '--no-cache', '--any-method']);
    expect(cleared).toMatchObject({ methods: [], cacheSeconds: null, roles: ['order-admins'] });
    expect(await ok(['routes', 'delete', health.id])).toBe(`route rule ${health.id} deleted\n`);

    // What rules need cannot go from under them.
    await refused(['apis', 'update', API, '--remove-scopes', 'orders:read'], /require orders:read: change or delete them first/);
    await refused(['apis', 'delete', API], /has 2 route rule\(s\): delete them first/);
  }, 240_000);

  it('refuses bad rules in one line', async () => {
    await refused(['routes', 'create', '--api', API, '--path', '/x', '--scope', 'orders:delete'], `API ${API} does not define orders:delete`);
    await refused(['routes', 'create', '--api', API, '--path', '/x/*/y'], 'may only be the last segment');
    await refused(['routes', 'create', '--api', API, '--path', '/x/{id}/{id}'], 'appears twice');
    await refused(['routes', 'create', '--api', API, '--path', '/x', '--host', 'orders.example/x'], 'is not a host name');
    await refused(['routes', 'create', '--api', API, '--path', '/x', '--public', '--scope', 'orders:read'], 'a public rule needs no token');
    await refused(['routes', 'create', '--api', API, '--path', '/x', '--sender-constrained', 'tls'], /invalid/);
    await refused(['routes', 'create', '--api', 'urn:nowhere', '--path', '/x'], 'unknown API "urn:nowhere"');
    await refused(['routes', 'create', '--api', API, '--host', 'orders.example', '--method', 'GET', '--path', '/orders/{key}'], /already covers orders\.example any method \/orders\/\{id\}/);
    await refused(['routes', 'show', 'route_nope'], 'unknown route rule "route_nope"');
    await refused(['routes', 'check', '--method', 'GET', '--url', 'not a url'], '--url must be an http(s) URL');
    await refused(['routes', 'export', '--format', 'nginx'], /invalid/);
  }, 240_000);

  it('exports every rule for Istio and for OPA', async () => {
    await ok(['routes', 'create', '--api', API, '--host', 'orders.example', '--method', 'POST', '--path', '/orders',
      '--scope', 'orders:write', '--sender-constrained', 'dpop']);
    const rules = await json<{ id: string; path: string; host: string | null; senderConstrained: string | null }[]>(['routes', 'list']);

    // The DPoP rule is named in a warning on stderr.
    const out = path.join(store.home, 'istio.yaml');
    const written = await cli(['routes', 'export', '--format', 'istio', '--selector', 'app=orders', '--out', out]);
    expect(written.code).toBe(0);
    expect(written.stderr).toMatch(/^postern: warning: rule route_\S+ \(orders\.example POST \/orders\) requires a dpop sender-constrained token/);
    const documents = parseAllDocuments(fs.readFileSync(out, 'utf8')).map((document) => document.toJSON());
    expect(documents.map((document) => document.kind)).toEqual(['RequestAuthentication', 'AuthorizationPolicy']);
    expect(documents[0].spec.selector).toEqual({ matchLabels: { app: 'orders' } });
    const operations = documents[1].spec.rules.flatMap((rule: any) => rule.to.map((to: any) => to.operation));
    const exported = new Set(operations.flatMap((operation: any) => operation.paths));
    for (const rule of rules.filter((each) => each.senderConstrained === null)) {
      expect(exported).toContain(rule.path.replace('{id}', '{*}'));
    }
    // The DPoP rule's requests are denied: not allowed, and excluded from the prefix that covers it.
    expect(exported).not.toContain('/orders');

    const folder = path.join(store.home, 'opa');
    const opa = await cli(['routes', 'export', '--format', 'opa', '--out', folder]);
    expect(opa.code).toBe(0);
    const data = JSON.parse(fs.readFileSync(path.join(folder, 'data.json'), 'utf8'));
    expect(data.postern.jwks_uri).toBe(`${data.postern.issuer}/jwks`);
    expect(data.postern.rules.map((rule: { id: string }) => rule.id).sort()).toEqual(rules.map((rule) => rule.id).sort());
    const byPath = Object.fromEntries(data.postern.rules.map((rule: any) => [rule.path, rule]));
    expect(byPath['/orders/{id}']).toMatchObject({ segments: [{ literal: 'orders' }, { param: 'id' }], prefix: false });
    expect(byPath['/orders/*']).toMatchObject({ segments: [{ literal: 'orders' }], prefix: true });
    const rego = fs.readFileSync(path.join(folder, 'policy.rego'), 'utf8');
    expect(rego).toMatch(/^package postern\.authz$/m);
    for (const reference of ['data.postern.rules', 'data.postern.jwks_uri', 'data.postern.issuer', 'rule.segments', 'rule.prefix',
      'winner.scopes_all', 'winner.scopes_any', 'winner.roles', 'winner.clients', 'winner.sender_constrained', 'winner.public']) {
      expect(rego).toContain(reference);
    }
  }, 120_000);
});
