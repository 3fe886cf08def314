// Every flow the project has, against a server process logging at `trace`: the CLI, the token
// endpoint (JWT and opaque, Basic and form credentials), introspection, revocation, failed
// authentication, browser sign-in (passwords, codes, ID, access and refresh tokens, cookies), the
// admin API (a new client and a rotated secret), probes and metrics, and
// requests carrying cookies and tokens in the query string. Then every secret and token used
// is searched for in everything the server wrote: none may appear. Each request line carries the
// request id that the response carried.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { cleanUp, freePort, makeTempDir, postern, ServerProcess, type Env } from './support/process.ts';
import { TEST_MASTER_KEY } from './support/server.ts';
import { authorizeUrl, HttpBrowser, pkce } from './support/browser.ts';

let tdb: TestDatabase | undefined;
let server: ServerProcess;
let url: string;
let env: Env;
const secrets = new Set<string>([TEST_MASTER_KEY]);
const requestIds: string[] = [];

afterAll(async () => {
  await cleanUp();
  await tdb?.drop();
}, 60_000);

function remember(value: unknown): string {
  if (typeof value !== 'string' || value.length < 8) throw new Error(`expected a secret, got ${JSON.stringify(value)}`);
  secrets.add(value);
  return value;
}

async function cli(args: string[]): Promise<any> {
  const result = await postern(['--json', ...args], env);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout);
}

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(`${url}${path}`, init);
  const id = res.headers.get('x-request-id');
  expect(id, `${path} answered without x-request-id`).toBeTruthy();
  requestIds.push(id!);
  return res;
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

async function form(path: string, fields: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await call(path, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as any };
}

describe(`logs hold no secrets (${onPostgres ? 'Postgres' : 'embedded'})`, () => {
  beforeAll(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = { PORT: String(port), ISSUER: url, LOG_LEVEL: 'trace', POSTERN_MASTER_KEY: TEST_MASTER_KEY, METRICS_TOKEN: remember('metrics-token-0123456789abcdef') };
    if (onPostgres) {
      tdb = await createTestDatabase();
      env.DATABASE_URL = tdb.url!;
    } else {
      env.POSTERN_DATA_DIR = makeTempDir('postern-logs-');
    }
    server = new ServerProcess(env);
    await server.waitUntilHealthy(url, 60_000);
  }, 90_000);

  it('runs every flow', async () => {
    // Registration through the CLI (through the running server's socket when embedded).
    const jwtApi = 'https://jobs.internal';
    const opaqueApi = 'https://ledger.internal';
    await cli(['apis', 'create', '--identifier', jwtApi, '--scopes', 'jobs:run']);
    await cli(['apis', 'create', '--identifier', opaqueApi, '--scopes', 'ledger:read', '--token-format', 'opaque']);
    await cli(['roles', 'create', 'runner', '--grant', `${jwtApi} jobs:run`, '--grant', `${opaqueApi} ledger:read`]);
    const basicClient = await cli(['clients', 'create', '--name', 'basic', '--role', 'runner']);
    const postClient = await cli(['clients', 'create', '--name', 'post', '--role', 'runner', '--auth-method', 'client_secret_post']);
    const a = { id: basicClient.clientId as string, secret: remember(basicClient.clientSecret) };
    const p = { id: postClient.clientId as string, secret: remember(postClient.clientSecret) };
    const rotated = await cli(['clients', 'rotate-secret', 'basic', '--keep-old-for', '1h']);
    remember(rotated.clientSecret);

    // Tokens: JWT with Basic, opaque with form credentials.
    const jwt = await form('/token', { grant_type: 'client_credentials', resource: jwtApi }, { authorization: basic(a.id, a.secret) });
    expect(jwt.status).toBe(200);
    const jwtToken = remember(jwt.body.access_token);
    const opaque = await form('/token', { grant_type: 'client_credentials', resource: opaqueApi, client_id: p.id, client_secret: p.secret });
    expect(opaque.status).toBe(200);
    const opaqueToken = remember(opaque.body.access_token);

    // Introspection (both the direct JWT path and the provider's), revocation, and again.
    for (const token of [jwtToken, opaqueToken]) {
      const owner = token === jwtToken ? a : p;
      const creds = token === jwtToken
        ? [{ token }, { authorization: basic(owner.id, owner.secret) }] as const
        : [{ token, client_id: owner.id, client_secret: owner.secret }, {}] as const;
      expect((await form('/token/introspection', creds[0], creds[1])).body.active).toBe(true);
      expect((await form('/token/revocation', creds[0], creds[1])).status).toBe(200);
      expect((await form('/token/introspection', creds[0], creds[1])).body.active).toBe(false);
    }

    // Failed authentication: a wrong secret (which is a secret too), a malformed header, no auth.
    const wrong = remember('wrong-secret-that-must-not-be-logged');
    expect((await form('/token', { grant_type: 'client_credentials' }, { authorization: basic(a.id, wrong) })).status).toBe(401);
    expect((await form('/token', { grant_type: 'client_credentials', client_id: p.id, client_secret: wrong })).status).toBe(401);
    expect((await form('/token/introspection', { token: jwtToken }, { authorization: 'Basic !!!' })).status).toBe(400);
    expect((await form('/token', { grant_type: 'password', username: 'alice', password: remember('hunter2-password-xyz') })).status).toBe(401);

    // Tokens and codes where they do not belong: query strings, cookies, unknown paths.
    const cookie = remember('session-cookie-value-abcdef');
    await call(`/token/introspection?token=${jwtToken}`, { headers: { cookie: `_session=${cookie}` } });
    await call(`/auth?client_id=${a.id}&code=${remember('authorization-code-value-123')}&response_type=code`);
    await call(`/nowhere?access_token=${jwtToken}`, { headers: { authorization: `Bearer ${jwtToken}` } });

    // The admin API: bootstrap, a token, a new client (its secret in the response), a rotation.
    const admin = await cli(['admin', 'bootstrap']);
    const adminSecret = remember(admin.clientSecret);
    const adminToken = await form('/token', { grant_type: 'client_credentials', resource: 'urn:postern' }, { authorization: basic(admin.clientId, adminSecret) });
    const bearer = { authorization: `Bearer ${remember(adminToken.body.access_token)}`, 'content-type': 'application/json' };
    const created = await call('/admin/v1/clients', { method: 'POST', headers: bearer, body: JSON.stringify({ name: 'made-by-api' }) });
    expect(created.status).toBe(201);
    const createdBody = await created.json() as any;
    remember(createdBody.clientSecret);
    const rotatedByApi = await call(`/admin/v1/clients/${createdBody.client.clientId}/rotate-secret`, { method: 'POST', headers: bearer, body: '{}' });
    expect(rotatedByApi.status).toBe(200);
    remember(((await rotatedByApi.json()) as any).clientSecret);
    expect((await call('/admin/v1/clients', { headers: { authorization: `Bearer ${jwtToken}` } })).status).toBe(401);

    // Browser sign-in: a person, a web app, a wrong and a right password, consent, the code, every
    // token, a refresh, userinfo and logout.
    const password = remember('sign-in-password-quiet-lake-7');
    const created2 = await postern(['--json', 'users', 'create', 'logged-person', '--password-stdin'], env, undefined, `${password}\n`);
    expect(created2.code, created2.stderr).toBe(0);
    await cli(['roles', 'assign', 'runner', '--user', 'logged-person']);
    const webapp = await cli(['clients', 'create', '--name', 'logged-web', '--grant', 'authorization_code', '--redirect-uri', 'https://app.example/cb']);
    const web = { id: webapp.clientId as string, secret: remember(webapp.clientSecret) };
    const browser = new HttpBrowser();
    const { verifier, challenge } = pkce();
    remember(verifier);
    let page = await browser.get(authorizeUrl(url, {
      client_id: web.id, response_type: 'code', redirect_uri: 'https://app.example/cb', scope: 'openid profile offline_access jobs:run',
      resource: jwtApi, prompt: 'consent', state: remember('state-value-for-the-logs'), code_challenge: challenge, code_challenge_method: 'S256',
    }), 'https://app.example/');
    page = await browser.submit(page, { username: 'logged-person', password: remember('a-wrong-sign-in-password-9') });
    expect(page.status).toBe(401);
    page = await browser.submit(page, { username: 'logged-person', password }, { stopAt: 'https://app.example/' });
    page = await browser.submit(page, { decision: 'allow' }, { stopAt: 'https://app.example/' });
    const code = remember(new URL(page.location!).searchParams.get('code'));
    // The session id and the CSRF secret (interaction cookies hold the interaction's id, which is
    // in the page's path by design).
    for (const [name, value] of browser.cookies) if (name === '_session' || name === 'postern.csrf') remember(value);
    const signedIn = await form('/token', { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: 'https://app.example/cb' },
      { authorization: basic(web.id, web.secret) });
    expect(signedIn.status).toBe(200);
    for (const key of ['access_token', 'id_token', 'refresh_token']) remember(signedIn.body[key]);
    expect((await call('/me', { headers: { authorization: `Bearer ${signedIn.body.access_token}` } })).status).toBe(200);
    const refreshed = await form('/token', { grant_type: 'refresh_token', refresh_token: signedIn.body.refresh_token, resource: jwtApi },
      { authorization: basic(web.id, web.secret) });
    expect(refreshed.status).toBe(200);
    for (const key of ['access_token', 'id_token', 'refresh_token']) remember(refreshed.body[key]);
    const logout = await browser.get(`${url}/session/end?id_token_hint=${signedIn.body.id_token}`);
    expect(logout.status).toBe(200);

    // Probes and metrics (with and without the metrics token).
    expect((await call('/readyz')).status).toBe(200);
    expect((await call('/metrics')).status).toBe(401);
    expect((await call('/metrics', { headers: { authorization: 'Bearer metrics-token-0123456789abcdef' } })).status).toBe(200);

    // Also the CLI's own output is a log of sorts, but it shows secrets once by design; the
    // server's is what must stay clean.
    const stop = await server.stop('SIGTERM', 20_000);
    expect(stop).toEqual({ code: 0, signal: null });
  }, 120_000);

  it('wrote none of them, and a request id on every request line', async () => {
    const written = `${server.stdout}\n${server.stderr}`;
    expect(written.length).toBeGreaterThan(1000);
    const leaked = [...secrets].filter((secret) => written.includes(secret));
    expect(leaked).toEqual([]);
    // Parts of a secret are no better: the base64url halves of each token, too.
    for (const secret of secrets) {
      for (const part of secret.split('.').filter((piece) => piece.length >= 16)) expect(written).not.toContain(part);
    }
    const lines = server.stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
    const requestLines = lines.filter((line) => line.msg === 'request');
    expect(requestLines.length).toBeGreaterThanOrEqual(requestIds.length);
    expect(requestLines.every((line) => typeof line.requestId === 'string')).toBe(true);
    const logged = new Set(requestLines.map((line) => line.requestId));
    expect(requestIds.filter((id) => !logged.has(id))).toEqual([]);
    expect(requestLines.some((line) => String(line.path).includes('?'))).toBe(false);
  });
});
