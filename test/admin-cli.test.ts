// `postern admin bootstrap` as a user runs it, against a real server process that serves the
// admin API on its own port (ADMIN_PORT): bootstrap, get an admin token, call the admin API.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { adminCall, tokenFor } from './support/admin.ts';
import { cleanUp, describeRun, freePort, makeTempDir, postern, ServerProcess, type Env } from './support/process.ts';

let tdb: TestDatabase | undefined;
let env: Env;
let server: ServerProcess;
let publicUrl: string;
let adminUrl: string;

beforeAll(async () => {
  const home = makeTempDir('postern-adm-');
  if (onPostgres) {
    tdb = await createTestDatabase();
    env = { DATABASE_URL: tdb.url, POSTERN_DATA_DIR: path.join(home, 'data') };
  } else {
    // The CLI reaches the server's embedded database through its socket.
    env = { POSTERN_DATA_DIR: path.join(home, 'data') };
  }
  const [port, adminPort] = [await freePort(), await freePort()];
  publicUrl = `http://127.0.0.1:${port}`;
  adminUrl = `http://127.0.0.1:${adminPort}`;
  server = new ServerProcess({ ...env, PORT: String(port), ISSUER: publicUrl, ADMIN_PORT: String(adminPort), LOG_LEVEL: 'warn' });
  await server.waitUntilHealthy(publicUrl, 120_000);
}, 180_000);

afterAll(async () => {
  await cleanUp();
  await tdb?.drop();
}, 60_000);

const field = (output: string, key: string) => new RegExp(`^${key}:\\s+(\\S+)$`, 'm').exec(output)?.[1];

describe('postern admin bootstrap', () => {
  let credentials: { id: string; secret: string };

  it('creates an admin client and prints its credentials once', async () => {
    const args = ['admin', 'bootstrap'];
    const result = await postern(args, env);
    expect(result.code, describeRun(args, result)).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^admin client created\n/);
    credentials = { id: field(result.stdout, 'client_id')!, secret: field(result.stdout, 'client_secret')! };
    expect(credentials.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(field(result.stdout, 'name')).toBe('postern-admin');
    expect(field(result.stdout, 'role')).toBe('postern-admin');
  });

  it('refuses to run a second time, in one line, with nothing changed', async () => {
    const args = ['admin', 'bootstrap'];
    const result = await postern(args, env);
    expect(result.code, describeRun(args, result)).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('postern: an admin client exists already (postern-admin); --force creates another\n');
  });

  it('creates another admin client with --force (JSON with --json)', async () => {
    const args = ['--json', 'admin', 'bootstrap', '--force'];
    const result = await postern(args, env);
    expect(result.code, describeRun(args, result)).toBe(0);
    const out = JSON.parse(result.stdout);
    expect(out).toMatchObject({ role: 'postern-admin', resource: 'urn:postern' });
    expect(out.name).toMatch(/^postern-admin-[0-9a-f]{6}$/);
    expect(out.clientSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const named = await postern(['admin', 'bootstrap', '--force', '--name', 'ops-admin', '--json'], env);
    expect(JSON.parse(named.stdout).name).toBe('ops-admin');
    const clash = await postern(['admin', 'bootstrap', '--force', '--name', 'ops-admin'], env);
    expect(clash.code).toBe(1);
    expect(clash.stderr).toBe('postern: a client named "ops-admin" already exists\n');
  });

  it('gives credentials that get an admin token for the admin port; the public port has no /admin', async () => {
    const token = await tokenFor(publicUrl, credentials);
    const res = await adminCall(adminUrl, 'GET', '/clients?namePrefix=postern-admin', { token });
    expect(res.status).toBe(200);
    expect(res.body.items.map((c: { name: string }) => c.name)).toContain('postern-admin');
    expect(res.body.items).toHaveLength(2);
    expect((await adminCall(adminUrl, 'POST', '/roles', { token, body: { name: 'from-admin-port' } })).status).toBe(201);
    expect((await adminCall(publicUrl, 'GET', '/clients', { token })).status).toBe(404);
    expect((await fetch(`${adminUrl}/healthz`)).status).toBe(404);
  });

  it('stops cleanly, both listeners', async () => {
    expect(await server.stop('SIGTERM', 20_000), server.output).toEqual({ code: 0, signal: null });
  });
});
