// `node src/main.ts` serving HTTPS itself (TLS_CERT_FILE, TLS_KEY_FILE, TLS_CLIENT_CA_FILE), as an
// operator starts it: files it cannot use are refused at start, saying which; the public and admin
// listeners speak HTTPS and advertise the mTLS methods (RFC 8705 §2); a renewed certificate is
// served without a restart. The protocol itself over mutual TLS: mtls.test.ts.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthority, tlsRequest, writePem, type Authority, type Issued } from './support/certificates.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { cleanUp, freePort, makeTempDir, MAIN, run, ServerProcess } from './support/process.ts';
import { TEST_MASTER_KEY } from './support/server.ts';

let tdb: TestDatabase;
let ca: Authority;
let serverCert: Issued;
let dir: string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  dir = makeTempDir('postern-mtls-listener-');
  ca = await createAuthority();
  serverCert = await ca.issue('CN=127.0.0.1', { server: true, san: [{ type: 'ip', value: '127.0.0.1' }, { type: 'dns', value: 'localhost' }] });
  writePem(dir, 'server.pem', serverCert.cert);
  writePem(dir, 'server.key', serverCert.key);
  writePem(dir, 'ca.pem', ca.cert);
}, 60_000);

afterAll(async () => {
  await tdb?.drop();
  await cleanUp();
});

describe('node src/main.ts with TLS_CERT_FILE', () => {
  /** The certificate a new connection to `port` is served (its SHA-256 fingerprint). */
  const servedCertificate = (port: number) => new Promise<string>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.cert, servername: 'localhost' }, () => {
      resolve(new X509Certificate(socket.getPeerCertificate().raw).fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });

  it('refuses to start with a file it cannot use, saying which', async () => {
    const env = { POSTERN_DATA_DIR: path.join(dir, 'never'), POSTERN_MASTER_KEY: TEST_MASTER_KEY };
    let result = await run([MAIN], {
      env: { ...env, TLS_CERT_FILE: path.join(dir, 'server.pem'), TLS_KEY_FILE: path.join(dir, 'missing.key') }, timeoutMs: 30_000,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`Postern cannot start:\n  - TLS_KEY_FILE: cannot read ${path.join(dir, 'missing.key')} (ENOENT)\n`);
    const leaf = await ca.issue('CN=not a ca');
    result = await run([MAIN], {
      env: { ...env, TLS_CERT_FILE: path.join(dir, 'server.pem'), TLS_KEY_FILE: path.join(dir, 'server.key'), TLS_CLIENT_CA_FILE: writePem(dir, 'leaf.pem', leaf.cert) },
      timeoutMs: 30_000,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('Postern cannot start:\n  - TLS_CLIENT_CA_FILE: CN=not a ca is not a CA certificate\n');
    expect(fs.existsSync(path.join(dir, 'never'))).toBe(false);
  }, 70_000);

  it('serves HTTPS (the admin listener too), advertises the mTLS methods, and serves a renewed certificate without a restart', async () => {
    const port = await freePort();
    const adminPort = await freePort();
    const certFile = writePem(dir, 'process.pem', serverCert.cert);
    const keyFile = writePem(dir, 'process.key', serverCert.key);
    const child = new ServerProcess({
      PORT: String(port), POSTERN_MASTER_KEY: TEST_MASTER_KEY, TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile,
      TLS_CLIENT_CA_FILE: path.join(dir, 'ca.pem'), ISSUER: `https://localhost:${port}`, ADMIN_PORT: String(adminPort),
      ...(onPostgres ? { DATABASE_URL: tdb.url } : { POSTERN_DATA_DIR: path.join(dir, 'process-data') }),
    });
    const url = `https://localhost:${port}`;
    const deadline = Date.now() + 60_000;
    let discovery: Awaited<ReturnType<typeof tlsRequest>> | undefined;
    while (Date.now() < deadline && child.running) {
      discovery = await tlsRequest(`${url}/.well-known/openid-configuration`, { ca: ca.cert }).catch(() => undefined);
      if (discovery?.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(discovery?.status, child.output).toBe(200);
    expect(discovery!.body).toMatchObject({
      issuer: url,
      tls_client_certificate_bound_access_tokens: true,
      token_endpoint_auth_methods_supported: expect.arrayContaining(['tls_client_auth', 'self_signed_tls_client_auth']),
    });
    expect(await servedCertificate(port)).toBe(new X509Certificate(serverCert.cert).fingerprint256);
    const admin = await tlsRequest(`https://localhost:${adminPort}/admin/v1/apis`, { ca: ca.cert });
    expect(admin.status).toBe(401);

    // Renewal: new files in place; new connections get the new certificate (checked every 10 s).
    const renewed = await ca.issue('CN=127.0.0.1', { server: true, san: [{ type: 'dns', value: 'localhost' }] });
    fs.writeFileSync(keyFile, renewed.key);
    fs.writeFileSync(certFile, renewed.cert);
    const expected = new X509Certificate(renewed.cert).fingerprint256;
    const until = Date.now() + 20_000;
    let served = '';
    while (Date.now() < until && (served = await servedCertificate(port)) !== expected) await new Promise((resolve) => setTimeout(resolve, 500));
    expect(served).toBe(expected);
    expect(child.stdout).toContain('"msg":"TLS files reloaded"');
    expect(await child.stop()).toMatchObject({ code: 0 });
  }, 120_000);
});
