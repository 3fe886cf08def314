// Two Postern processes (`node src/main.ts`) on one Postgres database, as behind a load balancer:
// tokens issued by one are understood by the other, and revocations and configuration changes made
// through one process (or the CLI) take effect on the other at once. Postgres only: the embedded
// store is single-process by design.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { setClientEnabled } from '../src/services/clients.ts';
import { adminCall } from './support/admin.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { postForm, TEST_MASTER_KEY } from './support/server.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

const ROOT = path.resolve(fileURLToPath(import.meta.url), '../..');
const run = promisify(execFile);

type Credentials = { id: string; secret: string; name: string };

interface Instance {
  name: string;
  url: string;
  child: ChildProcess;
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts `node src/main.ts`; resolves once /healthz answers. */
async function startInstance(name: string, databaseUrl: string, issuer?: string): Promise<Instance> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, ['src/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      ISSUER: issuer ?? url,
      LOG_LEVEL: 'warn',
      POSTERN_MASTER_KEY: TEST_MASTER_KEY,
      // The 50 rounds of a disabled client's invalid_client would put it in back-off (by design);
      // this file is about propagation, so the back-off is off here.
      RATE_LIMIT_INVALID_CLIENT: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const instance = { name, url, child, output, exited };

  const deadline = Date.now() + 30_000;
  let done = false;
  void exited.then(() => { done = true; });
  while (Date.now() < deadline) {
    if (done) throw new Error(`${name} exited before it was ready:\n${output.join('')}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.status === 200) return instance;
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`${name} did not become ready in 30 s:\n${output.join('')}`);
}

async function stopInstance(instance: Instance | undefined) {
  if (!instance) return undefined;
  if (instance.child.exitCode === null && instance.child.signalCode === null) {
    process.kill(instance.child.pid!, 'SIGTERM');
  }
  const timeout = setTimeout(() => instance.child.kill('SIGKILL'), 15_000);
  const result = await instance.exited;
  clearTimeout(timeout);
  return result;
}

/** The `postern` command on the test database. */
async function cli(args: string[]) {
  return run(process.execPath, ['bin/postern.js', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, DATABASE_URL: tdb.url!, LOG_LEVEL: 'warn', POSTERN_MASTER_KEY: TEST_MASTER_KEY },
  });
}

let tdb: TestDatabase;
let a: Instance | undefined;
let b: Instance | undefined;
let orders: Awaited<ReturnType<typeof api>>;
let ledger: Awaited<ReturnType<typeof api>>;
let reader: Awaited<ReturnType<typeof role>>;
let billing: Credentials;
let auditor: Credentials;

const token = async (instance: Instance, client: Credentials, resource: string) => {
  const res = await postForm(`${instance.url}/token`, { grant_type: 'client_credentials', resource }, client);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.access_token as string;
};
const introspect = (instance: Instance, tokenValue: string, caller: Credentials) =>
  postForm(`${instance.url}/token/introspection`, { token: tokenValue }, caller);
const revoke = (instance: Instance, tokenValue: string, caller: Credentials) =>
  postForm(`${instance.url}/token/revocation`, { token: tokenValue }, caller);

describe.skipIf(!onPostgres)('two Postern processes on one database', () => {
  beforeAll(async () => {
    tdb = await createTestDatabase();
    const db = tdb.database.db;
    // Configuration made before the processes start...
    orders = await api(db, { scopes: ['orders:read', 'orders:write'] });
    ledger = await api(db, { scopes: ['ledger:read'], tokenFormat: 'opaque' });
    reader = await role(db, [
      { api: orders.identifier, scopes: ['orders:read'] },
      { api: ledger.identifier, scopes: ['ledger:read'] },
    ]);
    billing = await serviceClient(db, [reader.name]);

    // The first start generates the development keys; the second one loads them.
    a = await startInstance('A', tdb.url!);
    // The issuer is the public name of the service: the same for every process behind it.
    b = await startInstance('B', tdb.url!, a.url);

    // ...and while they run: an auditor holding Postern's own `introspect` permission.
    const introspector = await role(db, [{ api: 'urn:postern', scopes: ['introspect'] }]);
    auditor = await serviceClient(db, [introspector.name]);
  }, 90_000);

  afterAll(async () => {
    const results = await Promise.all([stopInstance(a), stopInstance(b)]);
    await tdb?.drop();
    for (const [instance, result] of [[a, results[0]], [b, results[1]]] as const) {
      if (!instance) continue;
      expect(result, `${instance.name} output:\n${instance.output.join('')}`).toEqual({ code: 0, signal: null });
    }
  }, 60_000);

  it('both processes use the signing keys in the database', async () => {
    type Jwks = { keys: { kid: string }[] };
    // A JWK set is a set: the order of its keys does not matter.
    const kids = (jwks: Jwks) => jwks.keys.map((key) => key.kid).sort();
    const jwksA = (await (await fetch(`${a!.url}/jwks`)).json()) as Jwks;
    const jwksB = (await (await fetch(`${b!.url}/jwks`)).json()) as Jwks;
    expect(kids(jwksB)).toEqual(kids(jwksA));
    const byKid = (jwks: Jwks) => Object.fromEntries(jwks.keys.map((key) => [key.kid, key]));
    expect(byKid(jwksB)).toEqual(byKid(jwksA));
    const keys = JSON.parse((await cli(['--json', 'keys', 'list'])).stdout) as { kid: string }[];
    expect(keys.map((key) => key.kid).sort()).toEqual(kids(jwksA));
  });

  it('a JWT issued by A introspects active on B, and one issued by B on A', async () => {
    const fromA = await token(a!, billing, orders.identifier);
    const onB = await introspect(b!, fromA, billing);
    expect(onB.status).toBe(200);
    expect(onB.body).toMatchObject({
      active: true, client_id: billing.id, aud: orders.identifier, iss: a!.url, scope: 'orders:read', roles: [reader.name],
    });
    expect((await introspect(b!, fromA, auditor)).body.active).toBe(true);

    const fromB = await token(b!, billing, orders.identifier);
    expect((await introspect(a!, fromB, billing)).body).toMatchObject({ active: true, iss: a!.url });
  });

  it('an opaque token issued by A introspects active on B', async () => {
    const fromA = await token(a!, billing, ledger.identifier);
    expect(fromA.split('.')).toHaveLength(1);
    const onB = await introspect(b!, fromA, billing);
    expect(onB.status).toBe(200);
    expect(onB.body).toMatchObject({
      active: true, client_id: billing.id, aud: ledger.identifier, iss: a!.url, scope: 'ledger:read', roles: [reader.name],
    });
    expect((await introspect(b!, fromA, auditor)).body.active).toBe(true);
  });

  it('a JWT revoked on A is inactive on B immediately (50 rounds, no waiting)', async () => {
    const failures: number[] = [];
    for (let round = 0; round < 50; round += 1) {
      const jwt = await token(round % 2 ? b! : a!, billing, orders.identifier);
      expect((await introspect(b!, jwt, billing)).body.active).toBe(true);
      const revoked = await revoke(a!, jwt, billing);
      expect(revoked.status).toBe(200);
      const after = await introspect(b!, jwt, billing);
      expect(after.status).toBe(200);
      if (after.body.active !== false) failures.push(round);
    }
    expect(failures, `rounds in which B still said active after A answered the revocation`).toEqual([]);
  });

  it('a JWT revoked on B is inactive on A immediately, whoever introspects', async () => {
    const failures: string[] = [];
    for (let round = 0; round < 20; round += 1) {
      const jwt = await token(a!, billing, orders.identifier);
      expect((await introspect(a!, jwt, auditor)).body.active).toBe(true);
      expect((await revoke(b!, jwt, billing)).status).toBe(200);
      const [byOwner, byAuditor] = await Promise.all([introspect(a!, jwt, billing), introspect(a!, jwt, auditor)]);
      if (byOwner.body.active !== false) failures.push(`round ${round}: active for its owner`);
      if (byAuditor.body.active !== false) failures.push(`round ${round}: active for the auditor`);
    }
    expect(failures, 'A still said active after B answered the revocation').toEqual([]);
  });

  it('an opaque token revoked on A is inactive on B immediately', async () => {
    for (let round = 0; round < 10; round += 1) {
      const opaque = await token(a!, billing, ledger.identifier);
      expect((await revoke(a!, opaque, billing)).status).toBe(200);
      expect((await introspect(b!, opaque, billing)).body).toEqual({ active: false });
    }
  });

  it('a client disabled with the CLI is refused by both at once, and its tokens go inactive', async () => {
    const db = tdb.database.db;
    const doomed = await serviceClient(db, [reader.name]);
    // Warm both processes' caches with the enabled client and its tokens.
    const jwt = await token(a!, doomed, orders.identifier);
    const opaque = await token(b!, doomed, ledger.identifier);
    for (const instance of [a!, b!]) {
      expect((await introspect(instance, jwt, auditor)).body.active).toBe(true);
      expect((await introspect(instance, opaque, auditor)).body.active).toBe(true);
      await token(instance, doomed, orders.identifier);
    }

    const disabled = await cli(['--json', 'clients', 'disable', doomed.name]);
    expect(JSON.parse(disabled.stdout)).toMatchObject({ clientId: doomed.id, enabled: false });

    // No waiting: the CLI has committed and exited.
    const [onB, onA] = await Promise.all([
      postForm(`${b!.url}/token`, { grant_type: 'client_credentials', resource: orders.identifier }, doomed),
      postForm(`${a!.url}/token`, { grant_type: 'client_credentials', resource: orders.identifier }, doomed),
    ]);
    expect(onB.status).toBe(401);
    expect(onB.body.error).toBe('invalid_client');
    expect(onA.status).toBe(401);
    expect(onA.body.error).toBe('invalid_client');

    for (const instance of [a!, b!]) {
      expect((await introspect(instance, jwt, auditor)).body, `JWT on ${instance.name}`).toEqual({ active: false });
      expect((await introspect(instance, opaque, auditor)).body, `opaque on ${instance.name}`).toEqual({ active: false });
      // The disabled client cannot authenticate to introspect its own tokens either.
      expect((await introspect(instance, jwt, doomed)).status).toBe(401);
    }
  });

  it('a client enabled again with the CLI gets tokens from both at once', async () => {
    const db = tdb.database.db;
    const svc = await serviceClient(db, [reader.name]);
    await cli(['clients', 'disable', svc.name]);
    // Both processes now hold the disabled client in their caches.
    for (const instance of [a!, b!]) {
      const refused = await postForm(`${instance.url}/token`, { grant_type: 'client_credentials', resource: orders.identifier }, svc);
      expect(refused.status).toBe(401);
    }
    await cli(['clients', 'enable', svc.name]);
    const [onA, onB] = await Promise.all([a!, b!].map((instance) =>
      postForm(`${instance.url}/token`, { grant_type: 'client_credentials', resource: orders.identifier }, svc)));
    expect(onA!.status, `A: ${JSON.stringify(onA!.body)}`).toBe(200);
    expect(onB!.status, `B: ${JSON.stringify(onB!.body)}`).toBe(200);
  });

  it('sees enable and disable made through the services of another process at once (50 rounds, no waiting)', async () => {
    // The same path as the CLI or an admin API in a third process, without the time a CLI takes to
    // exit after its commit.
    const db = tdb.database.db;
    const svc = await serviceClient(db, [reader.name]);
    const stale: string[] = [];
    const ask = () => Promise.all([a!, b!].map(async (instance) => ({
      instance,
      res: await postForm(`${instance.url}/token`, { grant_type: 'client_credentials', resource: orders.identifier }, svc),
    })));
    // Both processes hold the client in their caches before every change.
    expect((await ask()).map(({ res }) => res.status)).toEqual([200, 200]);
    for (let round = 0; round < 50; round += 1) {
      await setClientEnabled(db, svc.id, false, NO_AUDIT);
      for (const { instance, res } of await ask()) {
        if (res.status !== 401) stale.push(`round ${round}: ${instance.name} answered ${res.status} to a disabled client`);
      }
      await setClientEnabled(db, svc.id, true, NO_AUDIT);
      for (const { instance, res } of await ask()) {
        if (res.status !== 200) stale.push(`round ${round}: ${instance.name} answered ${res.status} ${res.body.error} to an enabled client`);
      }
    }
    expect(stale).toEqual([]);
  });

  it('an admin client demoted with the CLI is refused with its old token by both at once', async () => {
    const db = tdb.database.db;
    const admins = await role(db, [{ api: 'urn:postern', scopes: ['admin:read', 'admin:write'] }]);
    const admin = await serviceClient(db, [admins.name]);
    const adminToken = await token(a!, admin, 'urn:postern');
    // Both processes hold the client with its role in their caches.
    for (const instance of [a!, b!]) {
      expect((await adminCall(instance.url, 'GET', '/clients', { token: adminToken })).status).toBe(200);
    }
    await cli(['roles', 'unassign', admins.name, '--client', admin.name]);
    // No waiting: the CLI has committed and exited.
    const [onB, onA] = await Promise.all([b!, a!].map((instance) =>
      adminCall(instance.url, 'POST', '/clients', { token: adminToken, body: { name: unique('after-demotion') } })));
    expect(onB!.status, JSON.stringify(onB!.body)).toBe(403);
    expect(onB!.body.error).toBe('insufficient_scope');
    expect(onA!.status, JSON.stringify(onA!.body)).toBe(403);
    // Nor can it give itself the role back.
    const regrant = await adminCall(b!.url, 'PUT', `/roles/${admins.id}/clients/${admin.id}`, { token: adminToken });
    expect(regrant.status).toBe(403);
    expect(JSON.parse((await cli(['--json', 'roles', 'show', admins.name])).stdout).clients).toEqual([]);
  });

  it('answers 20 parallel client-credentials requests split across A and B', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => postForm(
      `${(i % 2 ? b! : a!).url}/token`,
      { grant_type: 'client_credentials', resource: i % 4 < 2 ? orders.identifier : ledger.identifier },
      billing,
    )));
    expect(results.map((res) => res.status)).toEqual(Array(20).fill(200));
    const tokens = new Set(results.map((res) => res.body.access_token as string));
    expect(tokens.size).toBe(20);
    // Every one of them is understood by the other process.
    const checks = await Promise.all(results.map((res, i) => introspect(i % 2 ? a! : b!, res.body.access_token, billing)));
    expect(checks.map((res) => res.body.active)).toEqual(Array(20).fill(true));
  });
});
