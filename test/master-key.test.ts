// The master key as an operator meets it, with the CLI and the server as processes: a wrong key is
// refused by both, touching nothing; `keys rotate-master` re-encrypts under a new key while a
// server runs; afterwards the server starts with the new key only, and earlier tokens still verify
// (opaque ones too: the artifact key they are stored under is re-encrypted, never changed).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MasterKey } from '../src/domain/key-encryption.ts';
import { writeMasterKeyFile } from '../src/platform/master-key.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { cleanUp, describeRun, freePort, MAIN, makeTempDir, postern, run, ServerProcess, type Env } from './support/process.ts';
import { postForm } from './support/server.ts';

let tdb: TestDatabase | undefined;
let storeEnv: Env;
let keyDir: string;
let oldKeyFile: string;
let newKeyFile: string;
const oldKey = MasterKey.generate('test');
const wrongKey = MasterKey.generate('test');
let port: number;
let url: string;

beforeAll(async () => {
  const home = makeTempDir('pst-');
  keyDir = path.join(home, 'keys');
  oldKeyFile = path.join(keyDir, 'old.key');
  newKeyFile = path.join(keyDir, 'new.key');
  writeMasterKeyFile(oldKeyFile, oldKey);
  if (onPostgres) {
    tdb = await createTestDatabase();
    storeEnv = { DATABASE_URL: tdb.url, POSTERN_DATA_DIR: path.join(home, 'data') };
  } else {
    storeEnv = { POSTERN_DATA_DIR: path.join(home, 'data') };
  }
  port = await freePort();
  url = `http://127.0.0.1:${port}`;
}, 60_000);

afterAll(async () => {
  await cleanUp();
  await tdb?.drop();
}, 60_000);

const withOldKey = (): Env => ({ ...storeEnv, POSTERN_MASTER_KEY_FILE: oldKeyFile });

async function cli(args: string[], env: Env, timeoutMs?: number) {
  const result = await postern(args, env, timeoutMs);
  return { result, what: describeRun(args, result) };
}

async function ok(args: string[], env: Env, timeoutMs?: number): Promise<string> {
  const { result, what } = await cli(args, env, timeoutMs);
  expect(result.code, what).toBe(0);
  expect(result.stderr, what).toBe('');
  return result.stdout;
}

const mismatch = (fingerprint: string, source: string) => new RegExp(
  `${source.replace(/[()/.]/g, '\\$&')} does not match the key the database was encrypted with \\(the signing key \\S+ `
  + `is encrypted under fingerprint ${oldKey.fingerprint}; the configured key has fingerprint ${fingerprint}\\); nothing was changed`,
);

let client: { id: string; secret: string };
let earlyToken: string;
let earlyOpaqueToken: string;
let server: ServerProcess;

async function token(resource = 'https://orders.internal'): Promise<string> {
  const res = await postForm(`${url}/token`, { grant_type: 'client_credentials', resource }, client);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.access_token as string;
}

async function introspect(value: string): Promise<Record<string, unknown>> {
  const res = await postForm(`${url}/token/introspection`, { token: value }, client);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as Record<string, unknown>;
}

describe('the master key, end to end', () => {
  it('keys generate stores keys under the master key from POSTERN_MASTER_KEY_FILE', async () => {
    expect(await ok(['keys', 'generate'], withOldKey(), 120_000)).toMatch(/^signing keys created\n/);
  }, 150_000);

  it('the CLI refuses a wrong master key in one line, and changes nothing', async () => {
    const before = await ok(['--json', 'keys', 'list'], withOldKey());
    const { result, what } = await cli(['keys', 'list'], { ...storeEnv, POSTERN_MASTER_KEY: wrongKey.exportText() });
    expect(result.code, what).toBe(1);
    expect(result.stdout, what).toBe('');
    expect(result.stderr, what).toMatch(/^postern: [^\n]+\n$/);
    expect(result.stderr).toMatch(mismatch(wrongKey.fingerprint, 'POSTERN_MASTER_KEY'));
    expect(result.stderr).not.toContain(wrongKey.exportText());
    expect(await ok(['--json', 'keys', 'list'], withOldKey())).toBe(before);
  }, 60_000);

  it('the server refuses a wrong master key at start, saying so', async () => {
    const result = await run([MAIN], { env: { ...storeEnv, PORT: String(port), POSTERN_MASTER_KEY: wrongKey.exportText() }, timeoutMs: 30_000 });
    expect(result.code, describeRun(['src/main.ts'], result, 'node')).toBe(1);
    expect(result.stderr).toMatch(/^Postern cannot start:\n {2}- [^\n]+\n$/);
    expect(result.stderr).toMatch(mismatch(wrongKey.fingerprint, 'POSTERN_MASTER_KEY'));
  }, 60_000);

  it('a server started with the right key issues tokens', async () => {
    server = new ServerProcess({ ...withOldKey(), PORT: String(port) });
    await server.waitUntilHealthy(url, 60_000);
    await ok(['apis', 'create', '--identifier', 'https://orders.internal', '--scopes', 'orders:read'], withOldKey());
    await ok(['apis', 'create', '--identifier', 'https://ledger.internal', '--scopes', 'ledger:read', '--token-format', 'opaque'], withOldKey());
    await ok(['roles', 'create', 'orders-reader', '--grant', 'https://orders.internal orders:read', '--grant', 'https://ledger.internal ledger:read'], withOldKey());
    const created = JSON.parse(await ok(['--json', 'clients', 'create', '--name', 'billing', '--role', 'orders-reader'], withOldKey()));
    client = { id: created.clientId, secret: created.clientSecret };
    earlyToken = await token();
    expect(await introspect(earlyToken)).toMatchObject({ active: true });
    earlyOpaqueToken = await token('https://ledger.internal');
    expect(earlyOpaqueToken.split('.')).toHaveLength(1);
    expect(await introspect(earlyOpaqueToken)).toMatchObject({ active: true });
  }, 90_000);

  it('keys rotate-master needs a new key, and refuses to overwrite a file', async () => {
    const { result } = await cli(['keys', 'rotate-master'], withOldKey());
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('postern: give the new master key: --new-key-file <path>, POSTERN_NEW_MASTER_KEY, or --generate\n');
    const taken = await cli(['keys', 'rotate-master', '--generate', '--new-key-file', oldKeyFile], withOldKey());
    expect(taken.result.stderr).toBe(`postern: ${oldKeyFile} exists already; name a new file\n`);
  }, 60_000);

  it('keys rotate-master --generate re-encrypts everything while the server keeps serving', async () => {
    const stdout = await ok(['keys', 'rotate-master', '--generate', '--new-key-file', newKeyFile], withOldKey());
    const newKey = MasterKey.parse(fs.readFileSync(newKeyFile, 'utf8'), 'new');
    expect(fs.statSync(newKeyFile).mode & 0o777).toBe(0o600);
    expect(stdout).toContain('master key rotated: 3 signing keys and 3 server secrets re-encrypted\n');
    expect(stdout).toContain(`  from master key ${oldKey.fingerprint} to ${newKey.fingerprint}\n`);
    expect(stdout).toContain(`new master key written to ${newKeyFile} (mode 0600)\n`);
    expect(stdout).toContain(`POSTERN_MASTER_KEY_FILE=${newKeyFile}`);
    expect(stdout).not.toContain(newKey.exportText());
    // The running server holds its keys in memory: nothing changes for it.
    expect(await introspect(earlyToken)).toMatchObject({ active: true });
    expect(await introspect(await token())).toMatchObject({ active: true });
    // The CLI with the old key is now refused, with the new one it works.
    const { result } = await cli(['keys', 'list'], withOldKey());
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`postern: POSTERN_MASTER_KEY_FILE (${oldKeyFile}) does not match the key the database was encrypted with`);
    expect(result.stderr).toContain(`is encrypted under fingerprint ${newKey.fingerprint}`);
    await ok(['keys', 'list'], { ...storeEnv, POSTERN_MASTER_KEY_FILE: newKeyFile });
    expect(await server.stop('SIGTERM', 20_000), server.output).toEqual({ code: 0, signal: null });
  }, 90_000);

  it('after it, the server starts with the new key and not with the old one; earlier tokens still verify', async () => {
    const refused = await run([MAIN], { env: { ...withOldKey(), PORT: String(port) }, timeoutMs: 30_000 });
    expect(refused.code, describeRun(['src/main.ts'], refused, 'node')).toBe(1);
    expect(refused.stderr).toContain(`POSTERN_MASTER_KEY_FILE (${oldKeyFile}) does not match the key the database was encrypted with`);

    server = new ServerProcess({ ...storeEnv, POSTERN_MASTER_KEY_FILE: newKeyFile, PORT: String(port) });
    await server.waitUntilHealthy(url, 60_000);
    expect(await introspect(earlyToken)).toMatchObject({ active: true, client_id: client.id, scope: 'orders:read' });
    // Stored under its keyed hash: found only because the artifact key is the same one.
    expect(await introspect(earlyOpaqueToken)).toMatchObject({ active: true, client_id: client.id, scope: 'ledger:read' });
    expect(await introspect(await token())).toMatchObject({ active: true });
    expect(await server.stop('SIGTERM', 20_000), server.output).toEqual({ code: 0, signal: null });
  }, 90_000);
});

describe('keys rotate-master --new-key-file', () => {
  it('says it read the new key from the file, which it leaves as it was', async () => {
    const thirdKey = MasterKey.generate('test');
    const thirdKeyFile = path.join(keyDir, 'third.key');
    writeMasterKeyFile(thirdKeyFile, thirdKey);
    const before = fs.statSync(thirdKeyFile);
    const stdout = await ok(['keys', 'rotate-master', '--new-key-file', thirdKeyFile], { ...storeEnv, POSTERN_MASTER_KEY_FILE: newKeyFile });
    expect(stdout).toContain(`new master key read from ${thirdKeyFile}\n`);
    expect(stdout).not.toContain('written');
    expect(fs.statSync(thirdKeyFile).mtimeMs).toBe(before.mtimeMs);
    const json = JSON.parse(await ok(['--json', 'keys', 'rotate-master', '--new-key-file', newKeyFile], { ...storeEnv, POSTERN_MASTER_KEY_FILE: thirdKeyFile }));
    expect(json).toMatchObject({ newKeyFile, newKeyWritten: false, to: MasterKey.parse(fs.readFileSync(newKeyFile, 'utf8'), 'new').fingerprint });
  }, 90_000);
});
