// `postern` refusing bad input (one line on stderr, a non-zero exit, nothing changed) and its
// operations commands (migrate, tokens prune, keys), run as a user runs them: child processes on
// the test's Postgres database or on a fresh embedded data folder.
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { embeddedServerPid } from '../src/db/database.ts';
import { listMigrations } from '../src/db/migrator.ts';
import { cliCommands, useCliStore } from './support/cli.ts';
import { onPostgres } from './support/database.ts';
import { CLI_TIMEOUT_MS, describeRun, postern } from './support/process.ts';

const store = useCliStore('postern-cli-ops-');
const { ok, json, refused } = cliCommands(() => store.env);

describe('bad input: one line on stderr, a non-zero exit, nothing changed', () => {
  type Kind = 'apis' | 'roles' | 'clients';
  const baseline: Partial<Record<Kind, unknown>> = {};
  let warehouse: { id: string };


  beforeAll(async () => {
    await ok(['apis', 'create', '--identifier', 'https://inventory.internal', '--name', 'inventory', '--scopes', 'inventory:read']);
    await ok(['roles', 'create', 'stock-reader', '--grant', 'inventory inventory:read']);
    warehouse = { id: (await json(['clients', 'create', '--name', 'warehouse', '--role', 'stock-reader'])).clientId };
    for (const kind of ['apis', 'roles', 'clients'] as const) baseline[kind] = await json([kind, 'list']);
  }, 120_000);

  it('an unknown role', async () => {
    await refused(['clients', 'create', '--name', 'other', '--role', 'nope'], 'postern: unknown role "nope"');
    await refused(['roles', 'assign', 'nope', '--client', 'warehouse'], 'postern: unknown role "nope"');
  }, 60_000);

  it('a duplicate client name', async () => {
    await refused(['clients', 'create', '--name', 'warehouse'], 'postern: a client named "warehouse" already exists');
  }, 60_000);

  it('a duplicate API identifier', async () => {
    await refused(['apis', 'create', '--identifier', 'https://inventory.internal', '--scopes', 'other'],
      /^postern: an API with identifier or name "https:\/\/inventory\.internal" already exists$/m);
  }, 60_000);

  it('an identifier that is not an absolute URI', async () => {
    await refused(['apis', 'create', '--identifier', 'not-a-url', '--scopes', 'x:read'],
      'postern: identifier must be an absolute URI without a fragment');
  }, 60_000);

  for (const [group, verb, ref, message] of [
    ['apis', 'show', 'https://nowhere.internal', 'postern: unknown API "https://nowhere.internal"'],
    ['apis', 'delete', 'api_nope', 'postern: unknown API "api_nope"'],
    ['roles', 'show', 'role_nope', 'postern: unknown role "role_nope"'],
    ['roles', 'delete', 'nope', 'postern: unknown role "nope"'],
    ['clients', 'show', 'nope', 'postern: unknown client "nope"'],
    ['clients', 'delete', 'nope', 'postern: unknown client "nope"'],
  ] as const) {
    it(`an unknown id or name: ${group} ${verb}`, async () => {
      await refused([group, verb, ref], message);
    }, 60_000);
  }

  it('scope characters RFC 6749 does not allow, when an API is created', async () => {
    await refused(['apis', 'create', '--identifier', 'https://quotes.internal', '--scopes', 'say"hi'],
      'postern: invalid scope "say"hi"');
  }, 60_000);

  it('scope characters RFC 6749 does not allow, in a grant', async () => {
    await refused(['roles', 'grant', 'stock-reader', 'inventory', 'inventory\\read'], 'postern: invalid scope "inventory\\read"');
  }, 60_000);

  it('a grant of a scope the API does not define', async () => {
    await refused(['roles', 'grant', 'stock-reader', 'inventory', 'inventory:write'],
      'postern: API https://inventory.internal does not define inventory:write');
    await refused(['roles', 'create', 'stock-writer', '--grant', 'https://inventory.internal inventory:write'],
      'postern: API https://inventory.internal does not define inventory:write');
  }, 60_000);

  it('a bad duration for --keep-old-for', async () => {
    await refused(['clients', 'rotate-secret', 'warehouse', '--keep-old-for', '24x'], 'postern: invalid duration "24x"');
    await refused(['clients', 'rotate-secret', warehouse.id, '--keep-old-for', '-1h'], 'postern: invalid duration "-1h"');
  }, 60_000);

  it('a bad --token-format value', async () => {
    await refused(['apis', 'create', '--identifier', 'https://xml.internal', '--token-format', 'xml'], /^postern: .*xml/);
  }, 60_000);

  it('deleting the built-in urn:postern API', async () => {
    await refused(['apis', 'delete', 'urn:postern'], 'postern: the postern API is built in and cannot be deleted');
    await refused(['apis', 'delete', 'api_postern'], 'postern: the postern API is built in and cannot be deleted');
  }, 60_000);

  // Last in this block: every refused command above left the store as it was.
  it('changed nothing', async () => {
    for (const kind of ['apis', 'roles', 'clients'] as const) expect(await json([kind, 'list']), `${kind} changed`).toEqual(baseline[kind]);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------

describe('operations', () => {
  it('migrate reports an up-to-date schema, and how many migrations it has', async () => {
    const total = listMigrations().length;
    expect(await ok(['migrate'])).toBe(`database schema is up to date (${total} migrations)\n`);
    expect(await json(['migrate'])).toEqual({ applied: [], migrations: total, upToDate: true });
  }, 60_000);

  it('tokens prune deletes what has expired', async () => {
    const created = await json(['clients', 'create', '--name', 'pruned']);
    await json(['clients', 'rotate-secret', 'pruned']); // the first secret expires now
    const result = await json(['tokens', 'prune']);
    expect(result).toEqual({ artifacts: expect.any(Number), revocations: expect.any(Number), clientSecrets: 1 });
    expect(await ok(['tokens', 'prune'])).toMatch(/^pruned 0 expired artifacts, 0 revocation entries, 0 client secrets\n$/);
    expect((await json(['clients', 'show', created.clientId])).secrets).toHaveLength(1);
  }, 60_000);

  it('keys list shows nothing before keys generate, then the public facts of each key', async () => {
    expect(await ok(['keys', 'list'])).toBe('(none)\n');
    expect(await json(['keys', 'list'])).toEqual([]);

    const generated = await json<{ kid: string; alg: string }[]>(['keys', 'generate']);
    expect(generated.map((key) => key.alg).sort()).toEqual(['ES256', 'EdDSA', 'RS256']);

    const table = await ok(['keys', 'list']);
    expect(table.split('\n')[0]).toMatch(/^KID\s+ALG\s+KTY\s+STATE\s+PUBLISHED\s+SIGNS FROM\s+SIGNS UNTIL\s+PUBLISHED UNTIL$/);
    const keys = await json<Record<string, unknown>[]>(['keys', 'list']);
    expect(keys).toHaveLength(3);
    for (const key of keys) {
      expect(Object.keys(key).sort()).toEqual(['activatesAt', 'alg', 'createdAt', 'kid', 'kty', 'removeAfter', 'retiresAt', 'state']);
      expect(key).toMatchObject({ state: 'active', retiresAt: null, removeAfter: null });
      expect(generated.map((g) => g.kid)).toContain(key.kid);
      expect(table).toContain(String(key.kid));
    }
    expect(Object.fromEntries(keys.map((key) => [key.alg, key.kty]))).toEqual({ ES256: 'EC', RS256: 'RSA', EdDSA: 'OKP' });
  }, 60_000);

  it('keys generate refuses when keys exist (and --if-missing succeeds without a change)', async () => {
    const before = await json(['keys', 'list']);
    await refused(['keys', 'generate'], 'postern: signing keys exist already');
    expect(await json(['keys', 'generate', '--if-missing'])).toEqual({ created: false });
    expect(await json(['keys', 'list'])).toEqual(before);
  }, 60_000);

  it('keys rotate publishes new keys that sign after KEY_PROPAGATION_SECONDS, and refuses a second rotation meanwhile', async () => {
    const before = await json<{ kid: string; alg: string }[]>(['keys', 'list']);
    const args = ['keys', 'rotate'];
    const result = await postern(args, { ...store.env, KEY_PROPAGATION_SECONDS: '7200' }, CLI_TIMEOUT_MS);
    expect(result.code, describeRun(args, result)).toBe(0);
    expect(result.stdout).toMatch(/^signing keys rotated: 3 new keys published now, signing from \S+ \(in 7200 s\)\n/);
    expect(result.stdout).toContain('Running servers pick the new keys up by themselves; nothing needs a restart.');

    const listed = await json<{ kid: string; alg: string; state: string; createdAt: string; activatesAt: string; retiresAt: string | null; removeAfter: string | null }[]>(['keys', 'list']);
    expect(listed).toHaveLength(6);
    const added = listed.filter((key) => !before.some((old) => old.kid === key.kid));
    expect(added.map((key) => [key.alg, key.state]).sort()).toEqual([['ES256', 'next'], ['EdDSA', 'next'], ['RS256', 'next']]);
    for (const key of added) {
      expect(Date.parse(key.activatesAt) - Date.parse(key.createdAt)).toBe(7200_000);
      expect(result.stdout).toContain(key.kid);
    }
    const activatesAt = added[0]!.activatesAt;
    for (const key of listed.filter((each) => before.some((old) => old.kid === each.kid))) {
      // Still signing until the new keys take over, then published for a day and five minutes.
      expect(key).toMatchObject({ state: 'active', retiresAt: activatesAt });
      expect(Date.parse(key.removeAfter!) - Date.parse(activatesAt)).toBe((86400 + 300) * 1000);
    }
    await refused(['keys', 'rotate'], `postern: a rotation is under way: ${added.map((key) => key.kid).join(', ')} become active at ${activatesAt}; rotate again after that`);
  }, 60_000);

  it.skipIf(!onPostgres)('keeps only the development master key in POSTERN_DATA_DIR when DATABASE_URL is set', () => {
    // The data lives in Postgres; the folder holds the generated master key (docs/master-key.md), nothing else.
    expect(fs.readdirSync(store.env.POSTERN_DATA_DIR!)).toEqual(['master.key']);
    expect(fs.statSync(path.join(store.env.POSTERN_DATA_DIR!, 'master.key')).mode & 0o777).toBe(0o600);
  });

  it.skipIf(onPostgres)('leaves the embedded data folder free for the next process', () => {
    const dataDir = store.env.POSTERN_DATA_DIR!;
    expect(fs.existsSync(path.join(dataDir, 'pgdata'))).toBe(true);
    expect(fs.existsSync(path.join(dataDir, 'postern.pid'))).toBe(false);
    expect(embeddedServerPid(dataDir)).toBeUndefined();
  });
});
