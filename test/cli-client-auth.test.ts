// `postern clients create|update` for private_key_jwt keys, TLS client certificates (RFC 8705),
// network allow-lists and the DPoP requirement, run as a user runs them (child processes, on the
// test's database).
import fs from 'node:fs';
import path from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { createAuthority, selfSigned, writePem } from './support/certificates.ts';
import { useCliStore } from './support/cli.ts';
import { describeRun, postern } from './support/process.ts';

/** Each test runs several commands one after the other (a few seconds each on a busy machine). */
const CLI_STEPS_TIMEOUT_MS = 120_000;

const store = useCliStore('postern-cli-auth-');

async function ok(args: string[]): Promise<string> {
  const result = await postern(args, store.env);
  const what = describeRun(args, result);
  expect(result.code, what).toBe(0);
  expect(result.stderr, what).toBe('');
  return result.stdout;
}

async function refused(args: string[], message: string): Promise<void> {
  const result = await postern(args, store.env);
  const what = describeRun(args, result);
  expect(result.code, what).toBe(1);
  expect(result.stdout, what).toBe('');
  expect(result.stderr, what).toMatch(/^postern: [^\n]+\n$/);
  expect(result.stderr, what).toContain(message);
}

async function publicJwks(file: string): Promise<Record<string, unknown>> {
  const { publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'billing-2026', alg: 'ES256', use: 'sig' };
  fs.writeFileSync(file, JSON.stringify({ keys: [jwk] }));
  return jwk;
}

describe('postern clients create and update for key-authenticated, network-limited clients', () => {
  it('creates a private_key_jwt client from --jwks-file: no secret, its key and networks shown', async () => {
    const file = path.join(store.home, 'keys.json');
    const jwk = await publicJwks(file);
    const out = await ok(['clients', 'create', '--name', 'billing', '--jwks-file', file,
      '--allowed-network', '10.0.0.0/8', '--allowed-network', 'fd00::/8', '--require-dpop']);
    expect(out).toMatch(/^auth method:\s+private_key_jwt$/m);
    expect(out).toMatch(/^keys:\s+billing-2026 \(EC P-256 ES256\)$/m);
    expect(out).toMatch(/^networks:\s+10\.0\.0\.0\/8 fd00::\/8$/m);
    expect(out).toMatch(/^require dpop:\s+yes$/m);
    expect(out).not.toContain('client_secret');
    const shown = JSON.parse(await ok(['--json', 'clients', 'show', 'billing']));
    expect(shown).toMatchObject({ jwks: { keys: [jwk] }, jwksUri: null, allowedNetworks: ['10.0.0.0/8', 'fd00::/8'], requireDpop: true });
  }, CLI_STEPS_TIMEOUT_MS);

  it('updates networks, keys and the DPoP requirement', async () => {
    let shown = JSON.parse(await ok(['--json', 'clients', 'update', 'billing', '--allowed-network', '192.0.2.0/24', '--no-require-dpop']));
    expect(shown).toMatchObject({ allowedNetworks: ['192.0.2.0/24'], requireDpop: false });
    shown = JSON.parse(await ok(['--json', 'clients', 'update', 'billing', '--any-network', '--jwks-uri', 'https://billing.internal/jwks.json']));
    expect(shown).toMatchObject({ allowedNetworks: [], jwks: null, jwksUri: 'https://billing.internal/jwks.json' });
  }, CLI_STEPS_TIMEOUT_MS);

  it('refuses a bad network, a private key, an unreadable file, a secret rotation, with one line', async () => {
    await refused(['clients', 'create', '--name', 'x1', '--allowed-network', '10.0.0.0/33'], 'is not an IPv4 or IPv6 network');
    const file = path.join(store.home, 'private.json');
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    fs.writeFileSync(file, JSON.stringify({ keys: [await exportJWK(privateKey)] }));
    await refused(['clients', 'create', '--name', 'x2', '--jwks-file', file], 'contains private key material');
    await refused(['clients', 'create', '--name', 'x3', '--jwks-file', path.join(store.home, 'missing.json')], 'cannot read');
    await refused(['clients', 'rotate-secret', 'billing'], 'has no secret');
    await refused(['clients', 'create', '--name', 'x4', '--jwks-uri', 'http://keys.example.com/jwks'], 'must use https');
    // A NUL (\u0000 in a JSON string, or a raw byte) or bytes that are not UTF-8: never stored.
    const jwk = await publicJwks(file);
    fs.writeFileSync(file, JSON.stringify({ keys: [{ ...jwk, kid: 'a\u0000b' }] }));
    await refused(['clients', 'create', '--name', 'x5', '--jwks-file', file], 'holds a NUL');
    fs.writeFileSync(file, Buffer.concat([Buffer.from(JSON.stringify({ keys: [jwk] })), Buffer.from([0xff])]));
    await refused(['clients', 'create', '--name', 'x6', '--jwks-file', file], 'is not UTF-8 text');
  }, CLI_STEPS_TIMEOUT_MS);

  it('creates tls_client_auth and self_signed_tls_client_auth clients: no secret, tokens bound by default', async () => {
    let out = await ok(['clients', 'create', '--name', 'orders', '--tls-subject-dn', 'CN=orders,O=Example']);
    expect(out).toMatch(/^auth method:\s+tls_client_auth$/m);
    expect(out).toMatch(/^certificate subject:\s+subject_dn CN=orders,O=Example$/m);
    expect(out).toMatch(/^require mtls:\s+yes/m);
    expect(out).not.toContain('client_secret');

    const cert = await selfSigned('CN=reports');
    out = await ok(['clients', 'create', '--name', 'reports', '--certificate-file', writePem(store.home, 'reports.pem', cert.cert)]);
    expect(out).toMatch(/^auth method:\s+self_signed_tls_client_auth$/m);
    expect(out).toContain(`certificates: ${cert.thumbprint} (CN=reports, expires `);

    const next = await selfSigned('CN=reports');
    const shown = JSON.parse(await ok(['--json', 'clients', 'update', 'reports', '--no-require-mtls',
      '--certificate-file', writePem(store.home, 'next.pem', `${cert.cert}${next.cert}`)]));
    expect(shown).toMatchObject({ requireMtls: false, certificates: [{ thumbprint: cert.thumbprint }, { thumbprint: next.thumbprint }] });
  }, CLI_STEPS_TIMEOUT_MS);

  it('refuses two subjects, a malformed DN, a subject with another method, a private key as certificate, an expired one', async () => {
    await refused(['clients', 'create', '--name', 'x5', '--tls-subject-dn', 'CN=a', '--tls-san-dns', 'a.internal'], 'give one of --tls-subject-dn');
    await refused(['clients', 'create', '--name', 'x6', '--tls-subject-dn', 'orders'], 'is not a distinguished name (RFC 4514)');
    await refused(['clients', 'create', '--name', 'x7', '--auth-method', 'client_secret_basic', '--tls-san-dns', 'a.internal'],
      'tlsSubject is for tls_client_auth clients');
    const authority = await createAuthority();
    await refused(['clients', 'create', '--name', 'x8', '--certificate-file', writePem(store.home, 'key.pem', authority.key)],
      'holds no PEM certificate');
    const expired = await selfSigned('CN=old', { days: -1 });
    await refused(['clients', 'create', '--name', 'x9', '--certificate-file', writePem(store.home, 'old.pem', expired.cert)], 'expired on');
  }, CLI_STEPS_TIMEOUT_MS);
});
