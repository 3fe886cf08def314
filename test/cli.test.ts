// The `postern` command as a user runs it: `node bin/postern.js ...` in a child process, on the
// test's Postgres database (DATABASE_URL) or on a fresh embedded data folder that no server holds.
// Help, and the README's flow; refusals and operations are in cli-operations.test.ts.
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../src/cli/commands.ts';
import { cliCommands, field, useCliStore } from './support/cli.ts';
import { describeRun } from './support/process.ts';

const store = useCliStore('postern-cli-');
const { cli, ok, json, refused } = cliCommands(() => store.env);

const SECRET = /^[A-Za-z0-9_-]{43}$/;

// ---------------------------------------------------------------------------------------------

const GROUPS: Record<string, string[]> = {
  apis: ['create', 'list', 'show', 'update', 'delete'],
  roles: ['create', 'list', 'show', 'delete', 'grant', 'ungrant', 'assign', 'unassign'],
  clients: ['create', 'list', 'show', 'update', 'enable', 'disable', 'delete', 'rotate-secret'],
  tokens: ['prune'],
  keys: ['generate', 'list', 'rotate', 'revoke', 'rotate-master'],
};

/** Options (or arguments) each command's help must mention. */
const HELP_MENTIONS: Record<string, string[]> = {
  '': ['--json', 'apis', 'roles', 'clients', 'migrate', 'tokens', 'keys'],
  'apis create': ['--identifier <uri>', '--name', '--scopes', '--describe-scope <scope=text>', '--token-format', '--alg', '--ttl', '--introspection-client', '--require-dpop',
    '--require-mtls'],
  'apis show': ['<api>'],
  'apis update': ['<api>', '--add-scopes', '--remove-scopes', '--token-format', '--ttl', '--no-introspection-client',
    '--require-dpop', '--no-require-dpop'],
  'apis delete': ['<api>'],
  'roles create': ['<name>', '--description', '--grant'],
  'roles show': ['<role>'],
  'roles delete': ['<role>'],
  'roles grant': ['<role>', '<api>', '<scopes...>'],
  'roles ungrant': ['<role>', '<api>', '<scopes...>'],
  'roles assign': ['<role>', '--client <client>'],
  'roles unassign': ['<role>', '--client <client>'],
  'clients create': ['--name <name>', '--role', '--grant', '--auth-method', '--jwks-file <file>', '--jwks-uri <url>',
    '--allowed-network <cidr>', '--require-dpop', '--tls-subject-dn <dn>', '--tls-san-dns <name>', '--tls-san-uri <uri>',
    '--certificate-file <file>', '--require-mtls', '--no-require-mtls'],
  'clients update': ['<client>', '--jwks-file <file>', '--jwks-uri <url>', '--allowed-network <cidr>', '--any-network',
    '--require-dpop', '--no-require-dpop', '--redirect-uri <uri>', '--post-logout-redirect-uri <uri>', '--no-post-logout-redirect-uri'],
  'clients show': ['<client>'],
  'clients enable': ['<client>'],
  'clients disable': ['<client>'],
  'clients delete': ['<client>'],
  'clients rotate-secret': ['<client>', '--keep-old-for <duration>'],
  'keys generate': ['--if-missing'],
  'keys revoke': ['<kid>'],
  'keys rotate-master': ['--new-key-file <path>', '--generate'],
};

const HELP_COMMANDS: string[][] = [
  [],
  ...Object.entries(GROUPS).flatMap(([group, subs]) => [[group], ...subs.map((sub) => [group, sub])]),
  ['migrate'],
];

/** What `postern <command> --help` prints, from the program itself (no process, no database). */
function helpOf(command: string[]): string {
  let target = buildProgram();
  for (const name of command) target = target.commands.find((each) => each.name() === name)!;
  return target.helpInformation();
}

describe('--help', () => {
  // Two as a user runs them: help needs no database and exits at once.
  for (const command of [[], ['clients', 'create']]) {
    it(`postern ${[...command, '--help'].join(' ')} prints the usage and exits 0`, async () => {
      const args = [...command, '--help'];
      const result = await cli(args);
      expect(result.code, describeRun(args, result)).toBe(0);
      expect(result.stderr).toBe('');
      expect(result.stdout).toBe(helpOf(command));
    });
  }

  for (const command of HELP_COMMANDS) {
    const name = command.join(' ');
    it(`postern ${name} --help names its subcommands and options`.replace('  ', ' '), () => {
      const help = helpOf(command);
      expect(help).toMatch(new RegExp(`^Usage: postern${name ? ` ${name}` : ''} `));
      for (const sub of GROUPS[name] ?? []) expect(help).toMatch(new RegExp(`^  ${sub}\\b`, 'm'));
      for (const mention of HELP_MENTIONS[name] ?? []) expect(help).toContain(mention);
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('registering an API, a role and a client, as the README shows', () => {
  let billing: { id: string; secret: string };
  let reports: { id: string; secret: string };

  it('apis create prints the new API; --json prints it as JSON', async () => {
    const out = await ok(['apis', 'create', '--identifier', 'https://orders.internal', '--scopes', 'orders:read orders:write']);
    expect(out).toMatch(/^API created\n/);
    expect(field(out, 'identifier')).toBe('https://orders.internal');
    expect(field(out, 'name')).toBe('https://orders.internal');
    expect(field(out, 'scopes')).toBe('orders:read orders:write');
    expect(field(out, 'token format')).toBe('jwt');
    expect(field(out, 'signing alg')).toBe('ES256');
    expect(field(out, 'token ttl')).toBe('300s');
    expect(field(out, 'id')).toMatch(/^api_/);

    const ledger = await json(['apis', 'create', '--identifier', 'https://ledger.internal', '--name', 'ledger',
      '--scopes', 'ledger:read', '--scopes', 'ledger:write', '--token-format', 'opaque', '--ttl', '10m']);
    expect(ledger).toMatchObject({
      identifier: 'https://ledger.internal',
      name: 'ledger',
      scopes: ['ledger:read', 'ledger:write'],
      tokenFormat: 'opaque',
      accessTokenTtl: 600,
      introspectionClientId: null,
      system: false,
    });
    expect(ledger.id).toMatch(/^api_/);
    expect(Date.parse(ledger.createdAt)).not.toBeNaN();
  }, 180_000);

  it('apis list and show, in text and JSON, include the built-in urn:postern', async () => {
    const table = await ok(['apis', 'list']);
    expect(table.split('\n')[0]).toMatch(/^IDENTIFIER\s+NAME\s+SCOPES\s+FORMAT\s+TTL$/);
    expect(table).toMatch(/^https:\/\/orders\.internal\s+https:\/\/orders\.internal\s+orders:read orders:write\s+jwt\s+300s$/m);
    expect(table).toMatch(/^https:\/\/ledger\.internal\s+ledger\s+ledger:read ledger:write\s+opaque\s+600s$/m);

    const list = await json<{ identifier: string; system: boolean }[]>(['apis', 'list']);
    expect(list.map((api) => api.identifier)).toEqual(['https://ledger.internal', 'https://orders.internal', 'urn:postern']);
    expect(list.find((api) => api.identifier === 'urn:postern')).toMatchObject({ system: true, scopes: ['admin:read', 'admin:write', 'introspect'] });

    const shown = await ok(['apis', 'show', 'ledger']);
    expect(field(shown, 'identifier')).toBe('https://ledger.internal');
    expect(field(shown, 'token format')).toBe('opaque');
    expect(field(shown, 'signing alg')).toBe('-');
    expect(await json(['apis', 'show', 'https://orders.internal'])).toMatchObject({
      identifier: 'https://orders.internal', scopes: ['orders:read', 'orders:write'], tokenFormat: 'jwt', accessTokenTtl: 300,
    });
  }, 180_000);

  it('roles create grants scopes of an API', async () => {
    const out = await ok(['roles', 'create', 'orders-reader', '--grant', 'https://orders.internal orders:read']);
    expect(out).toMatch(/^role created\n/);
    expect(field(out, 'name')).toBe('orders-reader');
    expect(field(out, 'grants')).toBe('https://orders.internal orders:read');
    expect(field(out, 'clients')).toBe('(none)');

    const role = await json(['roles', 'create', 'ledger-writer', '--description', 'posts entries',
      '--grant', 'ledger ledger:read ledger:write']);
    expect(role).toMatchObject({
      name: 'ledger-writer',
      description: 'posts entries',
      grants: [{ api: 'https://ledger.internal', scopes: ['ledger:read', 'ledger:write'] }],
      clients: [],
    });
    expect(role.id).toMatch(/^role_/);
  }, 180_000);

  it('clients create shows the client_id and the client_secret once', async () => {
    const out = await ok(['clients', 'create', '--name', 'billing', '--role', 'orders-reader']);
    expect(out).toMatch(/^client created\n/);
    const id = field(out, 'client_id');
    const secret = field(out, 'client_secret');
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(secret).toMatch(SECRET);
    expect(field(out, 'name')).toBe('billing');
    expect(field(out, 'enabled')).toBe('yes');
    expect(field(out, 'grant types')).toBe('client_credentials');
    expect(field(out, 'auth method')).toBe('client_secret_basic');
    expect(field(out, 'roles')).toBe('orders-reader');
    expect(out).toContain('it is shown only once');
    expect(out.split(secret!)).toHaveLength(2);
    billing = { id: id!, secret: secret! };

    const created = await json(['clients', 'create', '--name', 'reports', '--auth-method', 'client_secret_post']);
    expect(created).toMatchObject({
      name: 'reports',
      enabled: true,
      grantTypes: ['client_credentials'],
      tokenEndpointAuthMethod: 'client_secret_post',
      roles: [],
    });
    expect(created.clientSecret).toMatch(SECRET);
    expect(created.secrets).toHaveLength(1);
    expect(created.secrets[0]).toMatchObject({ expiresAt: null });
    reports = { id: created.clientId, secret: created.clientSecret };
  }, 180_000);

  it('clients list and show never print a secret', async () => {
    const table = await ok(['clients', 'list']);
    expect(table.split('\n')[0]).toMatch(/^CLIENT_ID\s+NAME\s+ENABLED\s+GRANTS\s+ROLES$/);
    expect(table).toMatch(new RegExp(`^${billing.id}\\s+billing\\s+yes\\s+client_credentials\\s+orders-reader$`, 'm'));
    expect(table).toMatch(new RegExp(`^${reports.id}\\s+reports\\s+yes\\s+client_credentials$`, 'm'));

    const list = await json<Record<string, unknown>[]>(['clients', 'list']);
    // The console's own sign-in app (migration 0016) is a client like any other.
    expect(list.map((client) => client.name)).toEqual(['billing', 'postern-console', 'reports']);

    const shown = await ok(['clients', 'show', 'billing']);
    expect(field(shown, 'client_id')).toBe(billing.id);
    expect(field(shown, 'roles')).toBe('orders-reader');
    expect(field(shown, 'secrets')).toMatch(/^sec_\S+ \(created \S+\)$/);

    const byId = await json(['clients', 'show', billing.id]);
    expect(byId).toMatchObject({ clientId: billing.id, name: 'billing', roles: ['orders-reader'] });
    expect(byId).not.toHaveProperty('clientSecret');

    for (const text of [table, JSON.stringify(list), shown, JSON.stringify(byId)]) {
      expect(text).not.toContain(billing.secret);
      expect(text).not.toContain(reports.secret);
    }
  }, 180_000);

  it('roles assign and unassign --client', async () => {
    expect(await ok(['roles', 'assign', 'ledger-writer', '--client', 'reports'])).toBe('role ledger-writer assigned to reports\n');
    expect((await json(['clients', 'show', 'reports'])).roles).toEqual(['ledger-writer']);
    const assigned = await json(['roles', 'assign', 'orders-reader', '--client', reports.id]);
    expect(assigned).toMatchObject({ name: 'orders-reader' });
    expect([...assigned.clients].sort()).toEqual([billing.id, reports.id].sort());
    expect((await json(['roles', 'show', 'ledger-writer'])).clients).toEqual([reports.id]);

    expect(await ok(['roles', 'unassign', 'ledger-writer', '--client', 'reports'])).toBe('role ledger-writer removed from reports\n');
    const unassigned = await json(['roles', 'unassign', 'orders-reader', '--client', 'reports']);
    expect(unassigned.clients).toEqual([billing.id]);
    expect((await json(['clients', 'show', 'reports'])).roles).toEqual([]);

    await refused(['roles', 'unassign', 'orders-reader', '--client', 'reports'],
      'postern: role "orders-reader" is not assigned to client "reports"');
  }, 180_000);

  it('roles grant and ungrant', async () => {
    const granted = await ok(['roles', 'grant', 'orders-reader', 'https://orders.internal', 'orders:write']);
    expect(granted).toMatch(/^scopes granted\n/);
    expect(field(granted, 'grants')).toBe('https://orders.internal orders:read orders:write');

    const back = await json(['roles', 'ungrant', 'orders-reader', 'https://orders.internal', 'orders:write']);
    expect(back.grants).toEqual([{ api: 'https://orders.internal', scopes: ['orders:read'] }]);
    const again = await json(['roles', 'grant', 'orders-reader', 'ledger', 'ledger:read']);
    expect(again.grants).toEqual([
      { api: 'https://ledger.internal', scopes: ['ledger:read'] },
      { api: 'https://orders.internal', scopes: ['orders:read'] },
    ]);
    const text = await ok(['roles', 'ungrant', 'orders-reader', 'https://ledger.internal', 'ledger:read']);
    expect(text).toMatch(/^scopes taken back\n/);
    expect(field(text, 'grants')).toBe('https://orders.internal orders:read');

    const list = await ok(['roles', 'list']);
    expect(list).toMatch(/^orders-reader\s+https:\/\/orders\.internal orders:read\s+1$/m);
    expect(list).toMatch(/^ledger-writer\s+https:\/\/ledger\.internal ledger:read ledger:write\s+0$/m);
  }, 180_000);

  it('clients disable and enable', async () => {
    expect(await ok(['clients', 'disable', 'billing'])).toBe('client billing disabled\n');
    expect(await json(['clients', 'show', 'billing'])).toMatchObject({ enabled: false });
    expect(await ok(['clients', 'list'])).toMatch(new RegExp(`^${billing.id}\\s+billing\\s+no\\s`, 'm'));
    expect(await json(['clients', 'enable', billing.id])).toMatchObject({ clientId: billing.id, enabled: true });
    expect(await json(['clients', 'show', 'billing'])).toMatchObject({ enabled: true });
  }, 180_000);

  it('clients rotate-secret --keep-old-for 24h prints a new secret and keeps the old one for 24 hours', async () => {
    const before = Date.now();
    const out = await ok(['clients', 'rotate-secret', 'billing', '--keep-old-for', '24h']);
    expect(out).toMatch(/^secret rotated for billing\n/);
    const secret = field(out, 'client_secret');
    expect(secret).toMatch(SECRET);
    expect(secret).not.toBe(billing.secret);
    const until = /^old secrets stop working at (\S+)$/m.exec(out)?.[1];
    expect(Math.abs(Date.parse(until!) - (before + 86_400_000))).toBeLessThan(60_000);

    const shown = await json(['clients', 'show', 'billing']);
    expect(shown.secrets).toHaveLength(2);
    expect(shown.secrets[0].expiresAt).toBe(until);
    expect(shown.secrets[1].expiresAt).toBeNull();
    expect(JSON.stringify(shown)).not.toContain(secret);

    const rotated = await json(['clients', 'rotate-secret', 'reports']);
    expect(rotated.clientSecret).toMatch(SECRET);
    expect(rotated.clientSecret).not.toBe(reports.secret);
    expect(Math.abs(Date.parse(rotated.oldSecretsExpireAt) - Date.now())).toBeLessThan(60_000);
    // Without --keep-old-for the old secret stops at once: only the new one is listed.
    expect(rotated.secrets).toHaveLength(1);
    expect(rotated.secrets[0].expiresAt).toBeNull();
  }, 60_000);

  it('apis update --add-scopes, --remove-scopes (with their grants) and --ttl', async () => {
    await ok(['roles', 'grant', 'orders-reader', 'https://orders.internal', 'orders:write']);
    const out = await ok(['apis', 'update', 'https://orders.internal', '--add-scopes', 'orders:admin orders:audit',
      '--remove-scopes', 'orders:write', '--ttl', '2m', '--describe-scope', 'orders:read=See your orders']);
    expect(out).toMatch(/^API updated\n/);
    expect(field(out, 'scopes')).toBe('orders:admin orders:audit orders:read');
    expect(field(out, '  orders:read')).toBe('See your orders');
    expect(field(out, 'token ttl')).toBe('120s');
    // Removing a scope removed its grant.
    expect((await json(['roles', 'show', 'orders-reader'])).grants)
      .toEqual([{ api: 'https://orders.internal', scopes: ['orders:read'] }]);

    const updated = await json(['apis', 'update', 'https://orders.internal', '--remove-scopes', 'orders:audit',
      '--ttl', '900', '--token-format', 'opaque', '--name', 'orders']);
    expect(updated).toMatchObject({
      identifier: 'https://orders.internal', name: 'orders', scopes: ['orders:admin', 'orders:read'],
      scopeDescriptions: { 'orders:read': 'See your orders' }, accessTokenTtl: 900, tokenFormat: 'opaque',
    });
    expect(await json(['apis', 'show', 'orders'])).toEqual(updated);
  }, 60_000);

  it('deletes clients, roles and APIs', async () => {
    expect(await ok(['clients', 'delete', 'reports'])).toBe('client reports deleted\n');
    const deletedClient = await json(['clients', 'delete', billing.id]);
    expect(deletedClient).toMatchObject({ clientId: billing.id, name: 'billing' });
    expect((await json<{ name: string }[]>(['clients', 'list'])).map((client) => client.name)).toEqual(['postern-console']);
    expect(await ok(['clients', 'list'])).not.toMatch(/billing|reports/);

    expect(await ok(['roles', 'delete', 'ledger-writer'])).toBe('role ledger-writer deleted\n');
    expect(await json(['roles', 'delete', 'orders-reader'])).toMatchObject({ name: 'orders-reader' });
    // postern-admin comes with the database (migration 0016): the console's administrators.
    expect((await json<{ name: string }[]>(['roles', 'list'])).map((role) => role.name)).toEqual(['postern-admin']);

    expect(await ok(['apis', 'delete', 'ledger'])).toBe('API https://ledger.internal deleted\n');
    expect(await json(['apis', 'delete', 'https://orders.internal'])).toMatchObject({ identifier: 'https://orders.internal' });
    expect((await json<{ identifier: string }[]>(['apis', 'list'])).map((api) => api.identifier)).toEqual(['urn:postern']);

    await refused(['clients', 'show', 'billing'], 'postern: unknown client "billing"');
  }, 90_000);
});

// ---------------------------------------------------------------------------------------------
