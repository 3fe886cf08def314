// Sign-in scenarios of `npm run bench`, Postern only (bare oidc-provider has no login of its own):
// password logins, bounded by argon2id, and the refresh-token grant, which rotates the token on
// every use, so each connection carries its own chain of refresh tokens.
import autocannon, { type Result } from 'autocannon';
import { openPostgres } from '../src/db/database.ts';
import { ARGON2_PARAMETERS, hashPassword, verifyPassword } from '../src/domain/passwords.ts';
import { createClient } from '../src/services/clients.ts';
import { createUser } from '../src/services/users.ts';
import { HttpBrowser, authorizeUrl, hiddenValue, pkce, type Page } from '../test/support/browser.ts';
import { JWT_RESOURCE } from './resources.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

const PASSWORD = 'bench-lantern-meadow-copper';
const CALLBACK = 'https://bench.example/cb';

export interface SignInWorld { username: string; clientId: string; clientSecret: string }

/** A person holding the bench role, and a web app; through the services, like the CLI. */
export async function registerSignIn(url: string, role: string): Promise<SignInWorld> {
  const database = openPostgres(url, { poolSize: 2, listen: false });
  try {
    await createUser(database.db, { username: 'bench-person', password: PASSWORD, roles: [role] }, NO_AUDIT);
    const { client, clientSecret } = await createClient(database.db, {
      name: 'bench-webapp', grantTypes: ['authorization_code'], redirectUris: [CALLBACK], firstParty: true,
    }, NO_AUDIT);
    return { username: 'bench-person', clientId: client.clientId, clientSecret: clientSecret! };
  } finally {
    await database.close();
  }
}

export interface SignInMeasurement { rps: number; p50: number; p99: number; ok: number; failed: number; statusCodes: string }

function summarize(result: Result, okStatus: string): SignInMeasurement {
  const ok = result.statusCodeStats[okStatus]?.count ?? 0;
  const total = Object.values(result.statusCodeStats).reduce((sum, { count }) => sum + count, 0);
  return {
    rps: ok / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok,
    failed: total - ok + result.errors + result.timeouts,
    statusCodes: Object.entries(result.statusCodeStats).map(([code, { count }]) => `${code}: ${count}`).join(', '),
  };
}

async function startLogin(issuer: string, world: SignInWorld, browser: HttpBrowser): Promise<{ page: Page; verifier: string }> {
  const { verifier, challenge } = pkce();
  const page = await browser.get(authorizeUrl(issuer, {
    client_id: world.clientId, response_type: 'code', redirect_uri: CALLBACK, prompt: 'consent',
    scope: 'openid offline_access orders:read', resource: JWT_RESOURCE, code_challenge: challenge, code_challenge_method: 'S256',
  }), CALLBACK);
  if (!page.html.includes('name="password"')) throw new Error(`expected the login page, got ${page.status}`);
  return { page, verifier };
}

/** Password logins per second: the same login form posted again and again (each one verified). */
export async function measureLogins(issuer: string, world: SignInWorld, options: { connections: number; duration: number }) {
  const browser = new HttpBrowser();
  const { page } = await startLogin(issuer, world, browser);
  const action = new URL(/action="([^"]+\/login)"/.exec(page.html)![1]!, issuer).href;
  const body = new URLSearchParams({ csrf: hiddenValue(page, 'csrf')!, username: world.username, password: PASSWORD }).toString();
  const headers = {
    'content-type': 'application/x-www-form-urlencoded',
    cookie: [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
  };
  const probe = await fetch(action, { method: 'POST', headers, body, redirect: 'manual' });
  if (probe.status !== 303) throw new Error(`login probe: expected 303, got ${probe.status}`);
  const result = await autocannon({ url: action, method: 'POST', headers, body, connections: options.connections, duration: options.duration });
  return summarize(result, '303');
}

/** One full sign-in (first-party: no consent): a refresh token. */
async function refreshTokenFor(issuer: string, world: SignInWorld): Promise<string> {
  const browser = new HttpBrowser();
  const { page, verifier } = await startLogin(issuer, world, browser);
  const back = await browser.submit(page, { username: world.username, password: PASSWORD }, { stopAt: CALLBACK });
  const code = new URL(back.location!).searchParams.get('code');
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(world) },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: code!, code_verifier: verifier, redirect_uri: CALLBACK }),
  });
  const tokens = await response.json() as { refresh_token?: string };
  if (!tokens.refresh_token) throw new Error(`no refresh token: ${JSON.stringify(tokens)}`);
  return tokens.refresh_token;
}

const basic = (world: SignInWorld) => `Basic ${Buffer.from(`${world.clientId}:${world.clientSecret}`).toString('base64')}`;

/**
 * Refresh-token grants per second for a JWT access token. Each answer's new refresh token goes
 * back into the pool the next request takes from (autocannon resets a connection's context when
 * its request list starts over, so the chain cannot live there); with as many tokens as
 * connections, a request always finds one.
 */
export async function measureRefresh(issuer: string, world: SignInWorld, options: { connections: number; duration: number }) {
  return replayRefresh(issuer, world, await refreshTokens(issuer, world, options.connections), options);
}

/** One refresh token per connection, each from a sign-in of its own. */
export async function refreshTokens(issuer: string, world: SignInWorld, count: number): Promise<string[]> {
  const pool: string[] = [];
  for (let i = 0; i < count; i++) pool.push(await refreshTokenFor(issuer, world));
  return pool;
}

/** The refresh-token grant under load, from `pool` (one token per connection), which it keeps up to date. */
export async function replayRefresh(issuer: string, world: SignInWorld, pool: string[], options: { connections: number; duration: number }) {
  const result = await autocannon({
    url: `${issuer}/token`,
    connections: options.connections,
    duration: options.duration,
    requests: [{
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(world) },
      setupRequest: (request) => {
        const token = pool.shift() ?? '';
        return { ...request, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token, resource: JWT_RESOURCE }).toString() };
      },
      onResponse: (status, body) => {
        if (status === 200) pool.push((JSON.parse(body) as { refresh_token: string }).refresh_token);
      },
    }],
  });
  return summarize(result, '200');
}

/** What one argon2id verification costs on this machine (median of 15), in ms. */
export async function argon2Cost(): Promise<{ parameters: string; verifyMs: number }> {
  const hash = await hashPassword(PASSWORD);
  const times: number[] = [];
  for (let i = 0; i < 15; i++) {
    const started = performance.now();
    await verifyPassword(hash, PASSWORD);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const { memoryCost, timeCost, parallelism } = ARGON2_PARAMETERS;
  return { parameters: `argon2id m=${memoryCost} KiB, t=${timeCost}, p=${parallelism}`, verifyMs: times[7]! };
}

export function renderSignIn(rows: [string, SignInMeasurement][], cost: { parameters: string; verifyMs: number }): string {
  const lines = rows.map(([name, m]) => `  ${name.padEnd(34)} ${m.rps.toFixed(0).padStart(7)} req/s  p50 ${m.p50.toFixed(0).padStart(4)} ms  `
    + `p99 ${m.p99.toFixed(0).padStart(5)} ms  failed ${m.failed}${m.failed ? ` (${m.statusCodes})` : ''}`);
  return [
    'Sign-in (Postern only; bare oidc-provider has no login):',
    ...lines,
    `  password hashing: ${cost.parameters}; one verification takes ${cost.verifyMs.toFixed(1)} ms here (median of 15, one core),`,
    `  so one core verifies at most ~${Math.floor(1000 / cost.verifyMs)} passwords a second.`,
  ].join('\n');
}
