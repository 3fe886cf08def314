// The Dockerfile, docker-compose.yml, deploy/nginx.conf and the docs' docker commands, checked
// without Docker: by reading them, against the settings the server reads (src/config.ts) and
// against each other. Where nginx is installed, deploy/nginx.conf is also run in front of two
// real servers that trust it, as the compose file runs it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/platform/logger.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import {
  codeBlocks, defaultOf, dockerInstructions, envPairs, exists, read, shellCommands, shellWords, unknownVariables, yamlDocuments,
} from './support/deploy-files.ts';
import { cleanUp, freePort, makeTempDir } from './support/process.ts';
import { startServer, type TestServer } from './support/server.ts';

const PORT = defaultOf('PORT')!;
const STOP_SECONDS = Number(defaultOf('SHUTDOWN_DELAY_SECONDS')) + Number(defaultOf('SHUTDOWN_TIMEOUT_SECONDS'));

describe('Dockerfile', () => {
  const all = dockerInstructions(read('Dockerfile'));
  // The image that runs: the instructions after the last FROM.
  const final = all.slice(all.map((each) => each.keyword).lastIndexOf('FROM'));
  const one = (keyword: string) => final.filter((each) => each.keyword === keyword);

  it('starts node on src/main.ts directly, never through npm', () => {
    expect(one('CMD').map((each) => JSON.parse(each.args))).toEqual([['node', 'src/main.ts']]);
    expect(one('ENTRYPOINT')).toEqual([]);
    expect(exists('src/main.ts')).toBe(true);
    expect(read('Dockerfile')).not.toMatch(/npm (run )?start/);
    expect(one('STOPSIGNAL').map((each) => each.args)).toEqual(['SIGTERM']);
  });

  it('sets production and one worker per container, with settings the server knows', () => {
    const env = Object.assign({}, ...one('ENV').map((each) => envPairs(each.args))) as Record<string, string>;
    expect(env).toMatchObject({ NODE_ENV: 'production', WORKERS: '1' });
    expect(unknownVariables(Object.keys(env))).toEqual([]);
  });

  it('health-checks with bin/healthcheck.js, which follows PORT and TLS, not a fixed URL', () => {
    const [check] = one('HEALTHCHECK');
    const command = JSON.parse(check!.args.slice(check!.args.indexOf('CMD') + 3).trim()) as string[];
    expect(command).toEqual(['node', 'bin/healthcheck.js']);
    expect(exists('bin/healthcheck.js')).toBe(true);
    expect(check!.args).not.toMatch(/https?:|\b3000\b/);
  });

  it('exposes the default PORT, runs as a user of its own, and copies what the server needs', () => {
    expect(one('EXPOSE').flatMap((each) => each.args.split(/\s+/))).toContain(PORT);
    expect(one('USER').map((each) => each.args)).toEqual(['node']);
    const copied = one('COPY').map((each) => each.args.split(/\s+/).at(-1)!.replace(/^\.\//, ''));
    for (const needed of ['node_modules', 'bin', 'src', 'migrations', 'views']) expect(copied).toContain(needed);
  });

  it('keeps secrets out of the build context', () => {
    const ignored = read('.dockerignore').split('\n').map((line) => line.trim());
    for (const pattern of ['.env', 'secrets', '*.key']) expect(ignored).toContain(pattern);
  });
});

describe('docker-compose.yml', () => {
  const [compose] = yamlDocuments('docker-compose.yml');
  const services = compose.services as Record<string, any>;
  const built = Object.entries(services).filter(([, service]) => service.build === '.');
  const runsServer = (service: any) => service.command === undefined || JSON.stringify(service.command).includes('src/main.ts');
  const serving = built.filter(([, service]) => runsServer(service));
  const hostOf = (url: string) => new URL(url).hostname;

  it('runs every Postern replica from one service, so one configuration', () => {
    expect(serving.map(([name]) => name)).toEqual(['postern']);
  });

  it('gives Postern only settings it knows, and files where they are mounted', () => {
    for (const [name, service] of built) {
      const env = service.environment as Record<string, string>;
      expect(unknownVariables(Object.keys(env)), name).toEqual([]);
      for (const [variable, value] of Object.entries(env).filter(([key]) => key.endsWith('_FILE'))) {
        // A compose secret `x` is mounted at /run/secrets/x.
        const secret = /^\/run\/secrets\/([\w.-]+)$/.exec(value)?.[1];
        expect(secret, `${name}: ${variable}=${value} is not a mounted secret`).toBeDefined();
        expect(service.secrets, `${name} does not mount ${secret}`).toContain(secret);
        expect(compose.secrets[secret!]?.file, `secret ${secret} has no file`).toBeDefined();
      }
    }
  });

  it('publishes only the proxy: a service that trusts X-Forwarded-For is reachable through it alone', () => {
    const published = Object.entries(services).filter(([, service]) => service.ports?.length).map(([name]) => name);
    expect(published).toEqual(['proxy']);
    expect(services.postern.environment.TRUST_PROXY).toBe('true');
    expect(services.proxy.ports).toEqual(['127.0.0.1:8080:8080']);
  });

  it('points the servers at services of the file: Postgres, and Redis for shared limits', () => {
    const env = services.postern.environment as Record<string, string>;
    expect(services[hostOf(env.DATABASE_URL!)]?.image).toMatch(/^postgres:/);
    expect(services[hostOf(env.REDIS_URL!)]?.image).toMatch(/^redis:/);
    for (const [name, service] of Object.entries(services)) {
      for (const target of Object.keys(service.depends_on ?? {})) expect(services[target], `${name} depends on ${target}`).toBeDefined();
    }
  });

  it('migrates and creates keys in a one-shot service; the servers do neither', () => {
    const init = JSON.stringify(services['postern-init'].command);
    expect(init).toContain('node bin/postern.js migrate');
    expect(init).toContain('node bin/postern.js keys generate --if-missing');
    expect(services.postern.environment).toMatchObject({ MIGRATE_ON_START: 'false', WORKERS: '1' });
    expect(services.postern.depends_on['postern-init']).toEqual({ condition: 'service_completed_successfully' });
  });

  it('stops a server no sooner than it drains, and checks its health with the image\'s check', () => {
    const grace = /^(\d+)s$/.exec(services.postern.stop_grace_period)?.[1];
    expect(Number(grace)).toBeGreaterThan(STOP_SECONDS);
    expect(services.postern.healthcheck).toBeUndefined();
    expect(services.postern.expose).toContain(PORT);
  });

  it('mounts deploy/nginx.conf, whose upstream is the Postern service on its PORT', () => {
    const [source] = (services.proxy.volumes[0] as string).split(':');
    expect(exists(source!)).toBe(true);
    const upstreams = [...read(source!).matchAll(/^\s*server\s+([\w.-]+):(\d+)/gm)].map((match) => `${match[1]}:${match[2]}`);
    expect(upstreams).toEqual([`postern:${services.postern.environment.PORT ?? PORT}`]);
  });

  it('takes its master key from the file the docs tell you to make, which git ignores', () => {
    expect(compose.secrets['postern-master-key'].file).toBe('./secrets/master.key');
    const make = 'mkdir -p secrets && (umask 077 && openssl rand -base64 32 > secrets/master.key)';
    expect(read('docs/deployment.md')).toContain(make);
    expect(read('README.md')).toContain(make);
    expect(read('.gitignore').split('\n')).toContain('/secrets/');
  });
});

describe('the docs\' docker commands', () => {
  const runs = codeBlocks(read('docs/deployment.md'))
    .flatMap((block) => shellCommands(block.text))
    .filter((command) => command.startsWith('docker run'));

  it('are there', () => {
    expect(runs.length).toBeGreaterThanOrEqual(2);
  });

  it('set only variables Postern knows, and mount every *_FILE they name', () => {
    for (const command of runs) {
      const words = shellWords(command);
      const env: Record<string, string> = {};
      const mounts: string[] = [];
      for (let i = 0; i < words.length; i += 1) {
        if (words[i] === '-e') {
          const [name, ...value] = words[i + 1]!.split('=');
          env[name!] = value.join('=');
        }
        if (words[i] === '-v') mounts.push(words[i + 1]!.split(':')[1]!);
      }
      expect(unknownVariables(Object.keys(env)), command).toEqual([]);
      for (const [name, value] of Object.entries(env).filter(([key]) => key.endsWith('_FILE'))) {
        expect(mounts, `${command}\n${name}=${value} is not mounted`).toContain(value);
      }
      expect(command).not.toMatch(/npm/);
    }
  });
});

describe('the docs start the server with node, never with npm', () => {
  it('in README.md, docs/, deploy/ and the container files', () => {
    const files = ['README.md', 'Dockerfile', 'docker-compose.yml',
      ...fs.readdirSync(path.join(process.cwd(), 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];
    const offending: string[] = [];
    for (const file of files) {
      read(file).split('\n').forEach((line, index) => {
        // The one line that says why not.
        if (/npm (run )?start/.test(line) && !line.includes('not pass SIGTERM on')) offending.push(`${file}:${index + 1}: ${line}`);
      });
    }
    expect(offending).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------

const nginx = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).error ? undefined : 'nginx';
if (!nginx) console.warn('nginx is not installed: deploy/nginx.conf is checked by reading it only');

describe.skipIf(!nginx)('deploy/nginx.conf in front of two servers that trust it', () => {
  let tdb: TestDatabase;
  const servers: TestServer[] = [];
  const lines: { msg: string; address?: string; requestId?: string; replica?: number }[] = [];
  let proxy: ChildProcess | undefined;

  afterAll(async () => {
    if (proxy?.pid && proxy.exitCode === null) {
      const exited = new Promise((resolve) => proxy!.once('exit', resolve));
      process.kill(proxy.pid, 'SIGTERM');
      await exited;
    }
    for (const server of servers) await server.close();
    await tdb?.drop();
    await cleanUp();
  }, 60_000);

  it('is valid nginx, passes requests to both, and the servers log the client nginx saw, not a forged X-Forwarded-For', async () => {
    tdb = await createTestDatabase();
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const text of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(text));
        done();
      },
    });
    for (let i = 0; i < 2; i += 1) {
      servers.push(await startServer(tdb.database, { TRUST_PROXY: 'true' }, '', { logger: createLogger('info', sink).child({ replica: i }) }));
    }
    const dir = makeTempDir('pst-nginx-');
    const listen = await freePort();
    // The compose file's DNS name stands for both replicas; here each is named by its address.
    const site = read('deploy/nginx.conf')
      .replace(/^\s*server\s+postern:\d+([^;]*);/m, servers.map((server) => `  server ${new URL(server.url).host}$1;`).join('\n'))
      .replace('listen 8080;', `listen 127.0.0.1:${listen};`);
    fs.writeFileSync(path.join(dir, 'site.conf'), site);
    fs.writeFileSync(path.join(dir, 'nginx.conf'), [
      `pid ${dir}/nginx.pid;`, `error_log ${dir}/error.log;`, 'daemon off;', 'events {}',
      'http {', `  access_log off; client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;`, `  include ${dir}/site.conf;`, '}', '',
    ].join('\n'));
    const test = spawnSync(nginx!, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { encoding: 'utf8' });
    expect(test.stderr).toContain('syntax is ok');
    proxy = spawn(nginx!, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
    const base = `http://127.0.0.1:${listen}`;
    const deadline = Date.now() + 10_000;
    for (;;) {
      const up = await fetch(`${base}/healthz`).then((res) => res.ok, () => false);
      if (up) break;
      if (Date.now() > deadline) throw new Error(`nginx did not answer: ${fs.readFileSync(path.join(dir, 'error.log'), 'utf8')}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const ids: string[] = [];
    for (let i = 0; i < 6; i += 1) {
      const res = await fetch(`${base}/healthz`, { headers: { 'x-forwarded-for': '198.51.100.66' } });
      expect(res.status).toBe(200);
      ids.push(res.headers.get('x-request-id')!);
    }
    const logged = lines.filter((line) => line.msg === 'request' && ids.includes(line.requestId!));
    expect(logged).toHaveLength(6);
    // nginx appends the address it saw; Postern takes that last entry, not the one the client sent.
    expect(new Set(logged.map((line) => line.address))).toEqual(new Set(['127.0.0.1']));
    expect(new Set(logged.map((line) => line.replica))).toEqual(new Set([0, 1]));
    expect((await fetch(`${base}/metrics`)).status).toBe(404);
  }, 60_000);
});
