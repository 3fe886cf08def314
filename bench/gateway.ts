// The decision endpoint under load (docs/gateways.md): decisions per second for a JWT on
// /gate/forward-auth (a scenario beside bare oidc-provider's opaque introspection in bench/run.ts),
// and the throughput of nginx -> Postern -> API against nginx -> API with no check, nginx running
// deploy/nginx-gateway.conf as users copy it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openPostgres } from '../src/db/database.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { createRoute } from '../src/services/routes.ts';
import { freePort } from './children.ts';
import { issueToken, type Measurement, type Probe, type Server } from './load.ts';
import { JWT_RESOURCE } from './resources.ts';

const GATE_HOST = 'orders.bench';

/** The route rule the decisions match: GET /orders/* needs orders:read. */
export async function registerGateRoute(url: string): Promise<void> {
  const database = openPostgres(url, { poolSize: 1, listen: false });
  try {
    await createRoute(database.db, { api: JWT_RESOURCE, path: '/orders/*', methods: ['GET'], scopesAll: ['orders:read'] }, NO_AUDIT);
  } finally {
    await database.close();
  }
}

/** Traefik's and Caddy's question for GET /orders/42 with a fresh JWT. */
export async function decisionProbe(server: Server): Promise<Probe> {
  const token = await issueToken(server, JWT_RESOURCE, 'jwt');
  return {
    method: 'GET',
    url: `${server.url}/gate/forward-auth`,
    headers: {
      authorization: `Bearer ${token}`,
      'x-forwarded-method': 'GET', 'x-forwarded-proto': 'https', 'x-forwarded-host': GATE_HOST, 'x-forwarded-uri': '/orders/42',
    },
    body: '',
    ok: (body) => body === '',
  };
}

export const hasNginx = !spawnSync('nginx', ['-v']).error;

/** One nginx in a folder of its own; `site` is a server block (and its upstreams). */
export async function startNginx(name: string, site: string): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pst-bench-${name}-`));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'site.conf'), site.replace(/listen \d+;/, `listen 127.0.0.1:${port};`));
  fs.writeFileSync(path.join(dir, 'nginx.conf'), [
    `pid ${dir}/nginx.pid;`, `error_log ${dir}/error.log;`, 'daemon off;', 'worker_processes 1;', 'events { worker_connections 1024; }',
    'http {', `  access_log off; client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;`, `  include ${dir}/site.conf;`, '}', '',
  ].join('\n'));
  const child: ChildProcess = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i += 1) {
    if (await fetch(url).then(() => true, () => false)) break;
    if (i > 100 || child.exitCode !== null) throw new Error(`nginx (${name}) did not start: ${fs.readFileSync(path.join(dir, 'error.log'), 'utf8')}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** deploy/nginx-gateway.conf asking `postern` (host:port) in front of `api`. */
export function gatewaySite(postern: string, api: string): string {
  return fs.readFileSync(path.resolve(import.meta.dirname, '../deploy/nginx-gateway.conf'), 'utf8')
    .replace('server postern:3000;', `server ${postern};`)
    .replace('server api:8000;', `server ${api};`);
}

/** The same nginx in front of the same API, checking nothing. */
export function plainSite(api: string): string {
  return [
    'upstream protected_api {', `  server ${api};`, '  keepalive 32;', '}',
    'server {', '  listen 8081;', '  location / {', '    proxy_pass http://protected_api;', '    proxy_http_version 1.1;',
    '    proxy_set_header Connection "";', '  }', '}', '',
  ].join('\n');
}

/** GET /orders/42 through a gateway with the token. */
export function throughProbe(url: string, token: string): Probe {
  return { method: 'GET', url: `${url}/orders/42`, headers: { authorization: `Bearer ${token}` }, body: '', ok: (body) => body === 'ok\n' };
}

export function renderGatewayReport(checked: Measurement, plain: Measurement, decisions: Measurement | undefined): string {
  const row = (label: string, m: Measurement) => `  ${label.padEnd(38)} ${m.rps.toFixed(0).padStart(7)} req/s  p50 ${m.p50.toFixed(1)} ms  p99 ${m.p99.toFixed(1)} ms  non-2xx ${m.non2xx}`;
  return [
    'Gateway (nginx, deploy/nginx-gateway.conf, one worker; the API a Node server answering "ok"):',
    row('nginx -> Postern /gate -> API', checked),
    row('nginx -> API, no check', plain),
    `  with the check / without: ${(checked.rps / plain.rps).toFixed(3)}x`,
    ...(decisions ? [`  decision endpoint alone, JWT: p99 ${decisions.p99.toFixed(1)} ms (target <= 5 ms at 32 connections: ${decisions.p99 <= 5 ? 'met' : 'MISSED'})`] : []),
  ].join('\n');
}
