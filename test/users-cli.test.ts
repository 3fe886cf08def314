// `postern users ...` and `postern roles assign --user` as a user runs them, in child processes.
import { describe, expect, it } from 'vitest';
import { useCliStore } from './support/cli.ts';
import { slowSuitesRunHere } from './support/database.ts';
import { describeRun, postern } from './support/process.ts';

const store = useCliStore('postern-users-');

async function ok(args: string[], stdin?: string): Promise<string> {
  const result = await postern(args, store.env, undefined, stdin);
  expect(result.code, describeRun(args, result)).toBe(0);
  return result.stdout;
}

async function refused(args: string[], stdin?: string): Promise<string> {
  const result = await postern(args, store.env, undefined, stdin);
  expect(result.code, describeRun(args, result)).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(/^postern: [^\n]+\n$/);
  return result.stderr;
}

const GOOD = 'plum-orchard-quietly-42';

// Slow on the embedded database (a data folder opened per command); cli.test.ts covers that path.
describe.runIf(slowSuitesRunHere)('postern users', () => {
  it('creates a person with the password from stdin, never echoing it', async () => {
    const out = await ok(['users', 'create', 'alice', '--email', 'alice@example.com', '--name', 'Alice', '--password-stdin'], `${GOOD}\n`);
    expect(out).toContain('user created');
    expect(out).toContain('alice@example.com');
    expect(out).not.toContain(GOOD);
    const shown = JSON.parse(await ok(['--json', 'users', 'show', 'ALICE']));
    expect(shown).toMatchObject({ username: 'alice', email: 'alice@example.com', name: 'Alice', enabled: true, roles: [] });
    expect(JSON.stringify(shown)).not.toMatch(/argon2|password_hash/);
  }, 120_000);

  it('applies the password policy', async () => {
    expect(await refused(['users', 'create', 'bob', '--password-stdin'], 'short\n')).toContain('at least 12 characters');
    expect(await refused(['users', 'create', 'bob', '--password-stdin'], 'password1234\n')).toContain('commonly used');
    expect(await refused(['users', 'create', 'bob', '--password-stdin'], 'iloveyou2024!!\n')).toContain('commonly used');
    expect(await refused(['users', 'create', 'bobby', '--password-stdin'], 'bobby-is-my-name-ok\n')).toContain('username');
    expect(await refused(['users', 'create', 'alice', '--password-stdin'], `${GOOD}\n`)).toContain('already exists');
    expect(await refused(['users', 'create', 'carol', '--email', 'not-an-email', '--password-stdin'], `${GOOD}\n`)).toContain('email');
  }, 120_000);

  it('refuses a NUL byte or text that is not UTF-8 in what it is given, in one line', async () => {
    // A shell hands bytes that are not UTF-8 to the program as U+FFFD.
    expect(await refused(['users', 'create', 'erin', '--name', 'Er\ufffdn', '--password-stdin'], `${GOOD}\n`)).toContain('not UTF-8');
    expect(await refused(['users', 'create', 'erin', '--password-stdin'], `${GOOD}\u0000\n`)).toContain('NUL');
    expect(await refused(['users', 'show', 'erin'])).toContain('unknown user');
  }, 120_000);

  it('asks for a terminal when there is neither one nor --password-stdin', async () => {
    expect(await refused(['users', 'create', 'dave'])).toContain('--password-stdin');
  }, 120_000);

  it('lists, disables, enables, sets a password, revokes sessions and deletes', async () => {
    expect(await ok(['users', 'list'])).toMatch(/alice\s+alice@example.com\s+yes/);
    expect(await ok(['users', 'disable', 'alice'])).toContain('user alice disabled');
    expect(JSON.parse(await ok(['--json', 'users', 'show', 'alice'])).enabled).toBe(false);
    expect(await ok(['users', 'enable', 'alice'])).toContain('user alice enabled');
    expect(await ok(['users', 'set-password', 'alice', '--password-stdin'], 'another-long-passphrase-7\n')).toContain('password set');
    expect(await ok(['users', 'revoke-sessions', 'alice'])).toContain('0 grant(s) revoked');
    expect(await refused(['users', 'show', 'nobody'])).toContain('unknown user "nobody"');
  }, 120_000);

  it('assigns roles to people', async () => {
    await ok(['apis', 'create', '--identifier', 'https://orders.internal', '--name', 'orders', '--scopes', 'orders:read']);
    await ok(['roles', 'create', 'orders-reader', '--grant', 'orders orders:read']);
    expect(await ok(['roles', 'assign', 'orders-reader', '--user', 'alice'])).toContain('assigned to user alice');
    expect(JSON.parse(await ok(['--json', 'users', 'show', 'alice'])).roles).toEqual(['orders-reader']);
    expect(JSON.parse(await ok(['--json', 'roles', 'show', 'orders-reader'])).users).toEqual(['alice']);
    expect(await refused(['roles', 'assign', 'orders-reader'])).toContain('exactly one of --client');
    expect(await ok(['roles', 'unassign', 'orders-reader', '--user', 'alice'])).toContain('removed from user alice');
    expect(await ok(['users', 'delete', 'alice'])).toContain('user alice deleted');
  }, 120_000);
});

describe.runIf(slowSuitesRunHere)('postern clients create for sign-in apps', () => {
  it('registers a confidential web app, a public app, and refuses bad redirect URIs', async () => {
    const web = JSON.parse(await ok(['--json', 'clients', 'create', '--name', 'webapp', '--grant', 'authorization_code',
      '--redirect-uri', 'https://app.example/cb', '--post-logout-redirect-uri', 'https://app.example/', '--first-party']));
    expect(web).toMatchObject({
      grantTypes: ['authorization_code', 'refresh_token'], redirectUris: ['https://app.example/cb'], public: false, firstParty: true,
    });
    expect(web.clientSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const spa = JSON.parse(await ok(['--json', 'clients', 'create', '--name', 'spa', '--grant', 'authorization_code',
      '--redirect-uri', 'http://localhost:5173/cb', '--public']));
    expect(spa).toMatchObject({ public: true, tokenEndpointAuthMethod: 'none' });
    expect(spa.clientSecret).toBeNull();
    expect(await refused(['clients', 'rotate-secret', 'spa'])).toContain('public');

    expect(await refused(['clients', 'create', '--name', 'x1', '--grant', 'authorization_code'])).toContain('redirect URI');
    expect(await refused(['clients', 'create', '--name', 'x2', '--grant', 'authorization_code', '--redirect-uri', 'http://app.example/cb']))
      .toContain('https');
    expect(await refused(['clients', 'create', '--name', 'x3', '--grant', 'authorization_code', '--redirect-uri', 'https://app.example/cb#frag']))
      .toContain('fragment');
    expect(await refused(['clients', 'create', '--name', 'x4', '--public'])).toContain('client_credentials');
  }, 120_000);

  it('replaces the redirect URIs of a sign-in app with clients update, under the rules of its creation', async () => {
    const updated = JSON.parse(await ok(['--json', 'clients', 'update', 'webapp',
      '--redirect-uri', 'https://app.example/callback', '--redirect-uri', 'https://app.example/other']));
    expect(updated).toMatchObject({
      redirectUris: ['https://app.example/callback', 'https://app.example/other'], postLogoutRedirectUris: ['https://app.example/'],
    });
    expect(await ok(['clients', 'update', 'webapp', '--post-logout-redirect-uri', 'https://app.example/bye']))
      .toMatch(/logout URIs:\s+https:\/\/app.example\/bye\n/);
    expect(JSON.parse(await ok(['--json', 'clients', 'update', 'webapp', '--no-post-logout-redirect-uri'])).postLogoutRedirectUris).toEqual([]);
    expect(await refused(['clients', 'update', 'webapp', '--redirect-uri', 'http://app.example/cb'])).toContain('must use https');
    expect(await refused(['clients', 'update', 'webapp', '--redirect-uri', 'https://app.example/cb#frag'])).toContain('fragment');
    expect(await refused(['clients', 'update', 'webapp', '--redirect-uri', 'com.example.app:/cb'])).toContain('private-use scheme');
    expect(JSON.parse(await ok(['--json', 'clients', 'update', 'spa', '--redirect-uri', 'com.example.app:/cb'])).redirectUris).toEqual(['com.example.app:/cb']);
    await ok(['clients', 'create', '--name', 'plain-service']);
    expect(await refused(['clients', 'update', 'plain-service', '--redirect-uri', 'https://app.example/cb'])).toContain('only to authorization_code clients');
    expect(JSON.parse(await ok(['--json', 'clients', 'show', 'webapp'])).redirectUris).toEqual(['https://app.example/callback', 'https://app.example/other']);
  }, 120_000);
});
