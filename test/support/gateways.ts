// Real gateways for tests: nginx and Caddy started from the very files users copy
// (deploy/nginx-gateway.conf, deploy/Caddyfile) with only addresses and ports substituted, each in
// a temporary prefix folder, and an upstream that echoes what it was sent.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { read } from './deploy-files.ts';
import { freePort, makeTempDir } from './process.ts';

export const hasNginx = !spawnSync('nginx', ['-v']).error;
export const hasCaddy = !spawnSync('caddy', ['version']).error;

export interface Gateway {
  url: string;
  stop(): Promise<void>;
}

export interface Upstream {
  url: string;
  /** Every request the upstream received: its path and headers. */
  seen: { url: string; headers: http.IncomingHttpHeaders }[];
  close(): Promise<void>;
}

/** An API that answers 200 with the request it got, as JSON. */
export async function startUpstream(): Promise<Upstream> {
  const seen: Upstream['seen'] = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: req.url, headers: req.headers }));
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function waitUntilUp(url: string, log: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    // Any answer at all: the gateway listens.
    if (await fetch(url).then(() => true, () => false)) return;
    if (Date.now() > deadline) throw new Error(`the gateway did not answer: ${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function stopper(child: ChildProcess): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
}

/** deploy/nginx-gateway.conf in front of `api`, asking Postern at `postern` (host:port). */
export async function startNginx(postern: string, api: string): Promise<Gateway> {
  const dir = makeTempDir('pst-ngx-');
  const port = await freePort();
  const site = read('deploy/nginx-gateway.conf')
    .replace('server postern:3000;', `server ${postern};`)
    .replace('server api:8000;', `server ${api};`)
    .replace('listen 8081;', `listen 127.0.0.1:${port};`);
  fs.writeFileSync(path.join(dir, 'site.conf'), site);
  fs.writeFileSync(path.join(dir, 'nginx.conf'), [
    `pid ${dir}/nginx.pid;`, `error_log ${dir}/error.log;`, 'daemon off;', 'worker_processes 1;', 'events {}',
    'http {', `  access_log off; client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;`, `  include ${dir}/site.conf;`, '}', '',
  ].join('\n'));
  const check = spawnSync('nginx', ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { encoding: 'utf8' });
  if (!check.stderr.includes('syntax is ok')) throw new Error(`deploy/nginx-gateway.conf: ${check.stderr}`);
  const child = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  await waitUntilUp(url, () => fs.readFileSync(path.join(dir, 'error.log'), 'utf8'));
  return { url, stop: stopper(child) };
}

/** deploy/Caddyfile in front of `api`, asking Postern at `postern` (host:port). */
export async function startCaddy(postern: string, api: string): Promise<Gateway> {
  const dir = makeTempDir('pst-caddy-');
  const [port, admin] = [await freePort(), await freePort()];
  const file = read('deploy/Caddyfile')
    .replace('admin 127.0.0.1:2019', `admin 127.0.0.1:${admin}`)
    .replace('forward_auth postern:3000', `forward_auth ${postern}`)
    .replace('reverse_proxy api:8000', `reverse_proxy ${api}`)
    .replace(/^:8082 \{/m, `http://127.0.0.1:${port} {`);
  fs.writeFileSync(path.join(dir, 'Caddyfile'), file);
  let log = '';
  const child = spawn('caddy', ['run', '--config', path.join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Caddy keeps its state under these: a folder of the test's own.
    env: { PATH: process.env.PATH, HOME: dir, XDG_DATA_HOME: path.join(dir, 'data'), XDG_CONFIG_HOME: path.join(dir, 'config') },
  });
  child.stderr!.on('data', (chunk: Buffer) => { log += chunk.toString(); });
  child.stdout!.resume();
  const url = `http://127.0.0.1:${port}`;
  await waitUntilUp(url, () => log);
  return { url, stop: stopper(child) };
}
