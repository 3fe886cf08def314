// bin/healthcheck.js, the container health check, against real servers over http and https: it
// follows PORT, HOST and TLS_CERT_FILE as the server reads them, expects exactly the certificate
// of TLS_CERT_FILE over HTTPS, and fails in one line when the server is not ready, not there, or
// not the one it expects.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeTarget } from '../src/platform/healthcheck.ts';
import { readListenerSettings } from '../src/config.ts';
import { loadTlsMaterial } from '../src/platform/tls.ts';
import { createAuthority, writePem, type Issued } from './support/certificates.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { cleanUp, describeRun, freePort, makeTempDir, ROOT, run, type Env } from './support/process.ts';
import { startServer, type TestServer } from './support/server.ts';

const HEALTHCHECK = path.join(ROOT, 'bin/healthcheck.js');

let tdb: TestDatabase;
let plain: TestServer;
let secure: TestServer;
let dir: string;
let certFile: string;
let keyFile: string;
let otherCertFile: string;

const portOf = (server: TestServer) => new URL(server.url).port;

async function healthcheck(env: Env, args: string[] = []) {
  const result = await run([HEALTHCHECK, ...args], { env, timeoutMs: 20_000 });
  return { ...result, what: describeRun(args, result, 'healthcheck') };
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  dir = makeTempDir('pst-hc-');
  const ca = await createAuthority('CN=Internal CA,O=Example');
  const serverCert: Issued = await ca.issue('CN=auth.example.com', { server: true, san: [{ type: 'dns', value: 'auth.example.com' }] });
  certFile = writePem(dir, 'server.pem', serverCert.cert);
  keyFile = writePem(dir, 'server.key', serverCert.key);
  const other = await ca.issue('CN=auth.example.com', { server: true, san: [{ type: 'dns', value: 'auth.example.com' }] });
  otherCertFile = writePem(dir, 'other.pem', other.cert);
  plain = await startServer(tdb.database);
  const tls = loadTlsMaterial({ tls: { certFile, keyFile }, mtls: { caFile: undefined, header: undefined, proxies: [] } });
  secure = await startServer(tdb.database, {}, '', { tls });
}, 60_000);

afterAll(async () => {
  await cleanUp();
  await plain?.close();
  await secure?.close();
  await tdb?.drop();
}, 60_000);

describe('the health check over http', () => {
  it('follows PORT and HOST and succeeds when /readyz answers 200', async () => {
    const result = await healthcheck({ PORT: portOf(plain), HOST: '127.0.0.1' });
    expect(result.code, result.what).toBe(0);
    expect(result.stdout).toBe(`healthcheck: http://127.0.0.1:${portOf(plain)}/readyz answered 200\n`);
  }, 30_000);

  it('reaches a server listening on every interface (HOST=0.0.0.0, the production default) on loopback', async () => {
    const result = await healthcheck({ NODE_ENV: 'production', PORT: portOf(plain) });
    expect(result.code, result.what).toBe(0);
    expect(result.stdout).toContain(`http://127.0.0.1:${portOf(plain)}/readyz`);
  }, 30_000);

  it('fails in one line when nothing listens there', async () => {
    const port = String(await freePort());
    const result = await healthcheck({ PORT: port });
    expect(result.code, result.what).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`^healthcheck: http://127\\.0\\.0\\.1:${port}/readyz: connect ECONNREFUSED[^\\n]*\\n$`));
  }, 30_000);

  it('fails while the server is not ready (stopping); --live asks only whether it runs', async () => {
    const stopping = await startServer(tdb.database);
    try {
      stopping.app.drain();
      const ready = await healthcheck({ PORT: portOf(stopping) });
      expect(ready.code, ready.what).toBe(1);
      expect(ready.stderr).toBe(`healthcheck: http://127.0.0.1:${portOf(stopping)}/readyz answered 503\n`);
      const live = await healthcheck({ PORT: portOf(stopping) }, ['--live']);
      expect(live.code, live.what).toBe(0);
      expect(live.stdout).toContain('/healthz answered 200');
    } finally {
      await stopping.close();
    }
  }, 30_000);

  it('refuses arguments it does not know', async () => {
    const result = await healthcheck({ PORT: portOf(plain) }, ['--port', '3000']);
    expect(result.code, result.what).toBe(2);
    expect(result.stderr).toBe('healthcheck: unknown argument --port (usage: healthcheck [--live])\n');
  }, 30_000);
});

describe('the health check over https (TLS_CERT_FILE)', () => {
  it('speaks https and accepts the certificate of TLS_CERT_FILE, whoever issued it and whatever its name', async () => {
    const result = await healthcheck({ PORT: portOf(secure), TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, ISSUER: 'https://auth.example.com' });
    expect(result.code, result.what).toBe(0);
    expect(result.stdout).toBe(`healthcheck: https://127.0.0.1:${portOf(secure)}/readyz answered 200\n`);
  }, 30_000);

  it('refuses a listener that presents another certificate', async () => {
    const result = await healthcheck({ PORT: portOf(secure), TLS_CERT_FILE: otherCertFile, TLS_KEY_FILE: keyFile });
    expect(result.code, result.what).toBe(1);
    expect(result.stderr).toBe(`healthcheck: https://127.0.0.1:${portOf(secure)}/readyz: the listener presented a certificate other than the one in TLS_CERT_FILE\n`);
  }, 30_000);

  it('fails on plain http where the server speaks https, and the other way round', async () => {
    const noTls = await healthcheck({ PORT: portOf(secure) });
    expect(noTls.code, noTls.what).toBe(1);
    const tls = await healthcheck({ PORT: portOf(plain), TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile });
    expect(tls.code, tls.what).toBe(1);
  }, 30_000);

  it('says so when TLS_CERT_FILE cannot be read', async () => {
    const result = await healthcheck({ PORT: portOf(secure), TLS_CERT_FILE: path.join(dir, 'missing.pem'), TLS_KEY_FILE: keyFile });
    expect(result.code, result.what).toBe(1);
    expect(result.stderr).toMatch(/^healthcheck: ENOENT[^\n]*missing\.pem[^\n]*\n$/);
  });
});

describe('probe targets', () => {
  it('come from the settings the server reads', () => {
    const target = (env: Env) => probeTarget(readListenerSettings(env), '/readyz').url;
    expect(target({})).toBe('http://127.0.0.1:3000/readyz');
    expect(target({ NODE_ENV: 'production' })).toBe('http://127.0.0.1:3000/readyz');
    expect(target({ HOST: '::', PORT: '8443' })).toBe('http://[::1]:8443/readyz');
    expect(target({ HOST: '10.1.2.3', PORT: '80' })).toBe('http://10.1.2.3:80/readyz');
    expect(target({ HOST: 'fd00::5' })).toBe('http://[fd00::5]:3000/readyz');
  });
});
