// The input rules of client authentication (services/client-auth.ts) called directly: each
// refusal with its exact words and field, and what is kept of what is accepted. The same rules
// through the admin API and the CLI are in admin-api.test.ts, private-key-jwt.test.ts and
// mtls.test.ts.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  checkClientCertificates, checkClientJwks, checkJwksUri, checkNetworks, checkTlsSubject, credentialMetadata, credentialsOf,
  describeClientCertificates, CREDENTIAL_PROPERTIES,
} from '../src/services/client-auth.ts';
import { selfSigned } from './support/certificates.ts';

/** Calls `fn` and returns what it refused with: message and fields. */
function refusal(fn: () => unknown): { code: string; message: string; fields: string[] } {
  try {
    fn();
  } catch (error) {
    const { code, message, fields } = error as { code: string; message: string; fields: string[] };
    return { code, message, fields };
  }
  throw new Error('expected a refusal');
}

const ec = async () => exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey) as Promise<Record<string, unknown>>;
const rsa = async () => exportJWK((await generateKeyPair('RS256', { extractable: true })).publicKey) as Promise<Record<string, unknown>>;
const ed = async () => exportJWK((await generateKeyPair('EdDSA', { extractable: true })).publicKey) as Promise<Record<string, unknown>>;

describe('checkClientJwks', () => {
  it('accepts public EC, RSA and OKP keys, with or without alg, use and kid', async () => {
    const keys = [{ ...(await ec()), alg: 'ES256', use: 'sig', kid: 'a' }, await rsa(), { ...(await ed()), kid: 'b' }];
    expect(checkClientJwks({ keys })).toEqual({ keys });
  });

  it('refuses what is not a JWK Set, and sets of no keys or too many', async () => {
    for (const value of [null, 'x', [], {}, { keys: 'x' }, { keys: {} }]) {
      expect(refusal(() => checkClientJwks(value)), JSON.stringify(value))
        .toEqual({ code: 'invalid_input', message: 'jwks must be a JWK Set: {"keys": [...]}', fields: ['jwks'] });
    }
    expect(refusal(() => checkClientJwks({ keys: [] }, 'keys'))).toEqual({ code: 'invalid_input', message: 'keys must hold 1 to 20 keys', fields: ['keys'] });
    const key = await ec();
    expect(checkClientJwks({ keys: Array.from({ length: 20 }, () => key) }).keys).toHaveLength(20);
    expect(refusal(() => checkClientJwks({ keys: Array.from({ length: 21 }, () => key) })).message).toBe('jwks must hold 1 to 20 keys');
  });

  it('refuses every private member of a JWK, and JWK Sets that are arrays or functions', async () => {
    const good = await ec();
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']) {
      expect(refusal(() => checkClientJwks({ keys: [{ ...good, [member]: 'x' }] })).message, member)
        .toBe(`jwks: key 1 contains private key material (${member}); register the public key only`);
    }
    for (const value of [Object.assign([], { keys: [good] }), Object.assign(() => {}, { keys: [good] })]) {
      expect(refusal(() => checkClientJwks(value)).message).toBe('jwks must be a JWK Set: {"keys": [...]}');
    }
  });

  it('refuses each bad key with its place and reason', async () => {
    const good = await ec();
    const cases: [unknown, string][] = [
      ['x', 'jwks: key 2 is not a JWK object'],
      [null, 'jwks: key 2 is not a JWK object'],
      [[], 'jwks: key 2 is not a JWK object'],
      [{ kty: 'oct', k: 'abc' }, 'jwks: key 2 has kty "oct"; only asymmetric keys (EC, RSA, OKP) are accepted'],
      [{ ...good, d: 'x', p: 'y' }, 'jwks: key 2 contains private key material (d, p); register the public key only'],
      [{ ...good, alg: 'HS256' }, 'jwks: key 2 has alg "HS256"; accepted: ES256, ES384, ES512, EdDSA, Ed25519, PS256, PS384, PS512, RS256, RS384, RS512'],
      [{ ...good, use: 'enc' }, 'jwks: key 2 has use "enc"; it must be "sig"'],
      [{ ...good, kid: '' }, 'jwks: key 2 has an invalid kid'],
      [{ ...good, kid: 7 }, 'jwks: key 2 has an invalid kid'],
      [{ ...good, kid: 'same' }, 'jwks: key 2 repeats kid "same"'],
      [{ kty: 'RSA', e: 'AQAB' }, 'jwks: key 2 lacks n'],
      [{ kty: 'RSA', n: '', e: 5 }, 'jwks: key 2 lacks n, e'],
      [{ kty: 'EC', crv: 'P-256', x: 'a' }, 'jwks: key 2 lacks y'],
      [{ kty: 'OKP', x: 'a' }, 'jwks: key 2 lacks crv'],
      [{ kty: 'OKP', crv: 'Ed25519', x: 'a', y: 1 }, ''],
    ];
    for (const [key, message] of cases) {
      const call = () => checkClientJwks({ keys: [{ ...good, kid: 'same' }, key] });
      if (!message) { expect(call().keys).toHaveLength(2); continue; }
      expect(refusal(call), message).toEqual({ code: 'invalid_input', message, fields: ['jwks'] });
    }
  });
});

describe('checkJwksUri', () => {
  it('takes https anywhere and http on a loopback host only, normalized', () => {
    expect(checkJwksUri('https://keys.internal/jwks.json')).toBe('https://keys.internal/jwks.json');
    expect(checkJwksUri('HTTPS://Keys.Internal/a/../jwks')).toBe('https://keys.internal/jwks');
    expect(checkJwksUri('http://127.0.0.1:8080/jwks')).toBe('http://127.0.0.1:8080/jwks');
    expect(checkJwksUri('http://localhost/jwks')).toBe('http://localhost/jwks');
  });

  it('refuses relative URLs, credentials, fragments and plain http elsewhere', () => {
    const form = 'jwksUri must be an absolute https URL without credentials or fragment';
    for (const value of ['/jwks', 'not a url', 'https://user@keys.internal/jwks', 'https://:pw@keys.internal/jwks', 'https://keys.internal/jwks#x', 'mailto:a@b']) {
      expect(refusal(() => checkJwksUri(value)), value).toEqual({ code: 'invalid_input', message: form, fields: ['jwksUri'] });
    }
    for (const value of ['http://keys.internal/jwks', 'ftp://keys.internal/jwks', 'ftp://localhost/jwks', 'ws://127.0.0.1/jwks']) {
      expect(refusal(() => checkJwksUri(value, 'uri')), value)
        .toEqual({ code: 'invalid_input', message: 'uri must use https (plain http only on a loopback host)', fields: ['uri'] });
    }
  });
});

describe('checkNetworks', () => {
  it('normalizes, splits on commas and spaces, and drops repeats', () => {
    expect(checkNetworks(['10.1.2.3/8, 192.0.2.7', ' fd00::1/8', '10.0.0.0/8'])).toEqual(['10.0.0.0/8', '192.0.2.7/32', 'fd00::/8']);
    expect(checkNetworks([])).toEqual([]);
    expect(checkNetworks(['', ' , '])).toEqual([]);
  });

  it('refuses what is not a network, and more than 100', () => {
    expect(refusal(() => checkNetworks(['10.0.0.0/33']))).toEqual({
      code: 'invalid_input', message: '"10.0.0.0/33" is not an IPv4 or IPv6 network in CIDR notation (like 10.0.0.0/8 or fd00::/8)', fields: ['allowedNetworks'],
    });
    const hosts = Array.from({ length: 100 }, (_, i) => `10.0.${i}.1`);
    expect(checkNetworks(hosts)).toHaveLength(100);
    expect(checkNetworks([...hosts, '10.0.0.1'])).toHaveLength(100);
    expect(refusal(() => checkNetworks([...hosts, '10.1.0.1'], 'nets'))).toEqual({ code: 'invalid_input', message: 'at most 100 networks per client', fields: ['nets'] });
  });
});

describe('checkTlsSubject', () => {
  it('keeps each kind of subject as written, DNS names in lower case and IP addresses normalized', () => {
    expect(checkTlsSubject({ field: 'subject_dn', value: ' CN=stock,O=Example ' })).toEqual({ field: 'subject_dn', value: 'CN=stock,O=Example' });
    expect(checkTlsSubject({ field: 'san_dns', value: 'Stock.Shop.Internal' })).toEqual({ field: 'san_dns', value: 'stock.shop.internal' });
    expect(checkTlsSubject({ field: 'san_dns', value: '_svc.a-b.example' })).toEqual({ field: 'san_dns', value: '_svc.a-b.example' });
    expect(checkTlsSubject({ field: 'san_ip', value: '::ffff:10.0.0.1' })).toEqual({ field: 'san_ip', value: '10.0.0.1' });
    expect(checkTlsSubject({ field: 'san_ip', value: '2001:DB8::0:1' })).toEqual({ field: 'san_ip', value: '2001:db8::1' });
    expect(checkTlsSubject({ field: 'san_email', value: 'ops@example.com' })).toEqual({ field: 'san_email', value: 'ops@example.com' });
    expect(checkTlsSubject({ field: 'san_uri', value: 'spiffe://example.org/ns/shop' })).toEqual({ field: 'san_uri', value: 'spiffe://example.org/ns/shop' });
    expect(checkTlsSubject({ field: 'san_dns', value: 'x'.repeat(63) })).toEqual({ field: 'san_dns', value: 'x'.repeat(63) });
    expect(checkTlsSubject({ field: 'san_dns', value: 'stock.a.b' })).toEqual({ field: 'san_dns', value: 'stock.a.b' });
  });

  it('refuses an unknown field, an empty or over-long value, and values not of their kind', () => {
    const fields = 'tlsSubject must name one of subject_dn, san_dns, san_ip, san_email, san_uri with its value';
    for (const value of [null, 'x', { field: 'cn', value: 'x' }, {}, Object.assign(() => {}, { field: 'san_uri', value: 'urn:x' })]) {
      expect(refusal(() => checkTlsSubject(value)), JSON.stringify(value)).toEqual({ code: 'invalid_input', message: fields, fields: ['tlsSubject'] });
    }
    for (const value of ['', '   ', 7, 'x'.repeat(1001)]) {
      expect(refusal(() => checkTlsSubject({ field: 'san_uri', value }, 'subject')).message, String(value))
        .toBe('subject: the san_uri value must be 1 to 1000 characters');
    }
    expect(checkTlsSubject({ field: 'san_uri', value: `urn:${'x'.repeat(996)}` }).value).toHaveLength(1000);
    expect(refusal(() => checkTlsSubject({ field: 'subject_dn', value: 'not a dn' })).message).toMatch(/^tlsSubject: "not a dn" is not a distinguished name \(RFC 4514\): ./);
    for (const value of ['*.example.com', 'a..b', '-a.example', 'a-.example', 'a b', `${'x'.repeat(64)}.example`, `${'a.'.repeat(127)}ab`]) {
      expect(refusal(() => checkTlsSubject({ field: 'san_dns', value })).message, value).toBe(`tlsSubject: "${value}" is not a DNS name (wildcards are not matched)`);
    }
    expect(refusal(() => checkTlsSubject({ field: 'san_ip', value: '10.0.0.300' })).message).toBe('tlsSubject: "10.0.0.300" is not an IPv4 or IPv6 address');
    for (const value of ['ops', 'ops@', '@example.com', 'o ps@example.com', 'ops@exa mple.com']) {
      expect(refusal(() => checkTlsSubject({ field: 'san_email', value })).message, value).toBe(`tlsSubject: "${value}" is not an email address`);
    }
    expect(refusal(() => checkTlsSubject({ field: 'san_uri', value: 'no-scheme' })).message).toBe('tlsSubject: "no-scheme" is not an absolute URI');
  });
});

describe('checkClientCertificates and describeClientCertificates', () => {
  it('registers each certificate as a JWK with its thumbprint and x5c, and describes it back', async () => {
    const one = await selfSigned('CN=stock,O=Example');
    const two = await selfSigned('CN=stock-next,O=Example');
    const { keys } = checkClientCertificates([one.cert, two.cert]);
    expect(keys.map((key) => key.kid)).toEqual([one.thumbprint, two.thumbprint]);
    expect(keys[0]).toMatchObject({ kty: 'EC', 'x5t#S256': one.thumbprint });
    expect(keys[0]!.d).toBeUndefined();
    expect((keys[0]!.x5c as string[])[0]).toBe(one.cert.replace(/-----[^-]+-----|\s/g, ''));
    const described = describeClientCertificates({ keys });
    expect(described.map((entry) => entry.thumbprint)).toEqual([one.thumbprint, two.thumbprint]);
    // Printed in RFC 4514 order: the last RDN of the certificate first.
    expect(described[0]!.subject).toBe('O=Example,CN=stock');
    expect(Date.parse(described[0]!.expiresAt)).toBeGreaterThan(Date.now());
    expect(describeClientCertificates(undefined)).toEqual([]);
    expect(describeClientCertificates({ keys: [{ kty: 'EC' }, { x5c: [7] }, { x5c: 'x' }, { x5c: ['not der'] }] })).toEqual([]);
  });

  it('refuses no certificates or too many, non-PEM, expired, repeated and non-JWK keys', async () => {
    const one = await selfSigned('CN=stock,O=Example');
    expect(refusal(() => checkClientCertificates([]))).toEqual({ code: 'invalid_input', message: 'certificates must hold 1 to 20 certificates', fields: ['certificates'] });
    expect(refusal(() => checkClientCertificates(Array.from({ length: 21 }, () => one.cert), 'certs')).message).toBe('certs must hold 1 to 20 certificates');
    const twenty = await Promise.all(Array.from({ length: 20 }, (_, i) => selfSigned(`CN=c${i},O=Example`)));
    expect(checkClientCertificates(twenty.map((issued) => issued.cert)).keys).toHaveLength(20);
    expect(refusal(() => checkClientCertificates([one.cert, 'not pem'])).message).toBe('certificates: certificate 2 is not a PEM certificate');
    expect(refusal(() => checkClientCertificates([7 as never])).message).toBe('certificates: certificate 1 is not a PEM certificate');
    expect(refusal(() => checkClientCertificates([one.cert, one.cert])).message).toBe('certificates: certificate 2 is listed twice');
    const expired = await selfSigned('CN=old,O=Example', { days: -1 });
    expect(refusal(() => checkClientCertificates([expired.cert])).message).toMatch(/^certificates: certificate 1 expired on \d{4}-\d\d-\d\dT/);
    // The boundary: valid until validTo, refused after it.
    const validTo = Date.parse(describeClientCertificates(checkClientCertificates([one.cert])).at(0)!.expiresAt);
    expect(checkClientCertificates([one.cert], 'certificates', validTo).keys).toHaveLength(1);
    expect(refusal(() => checkClientCertificates([one.cert], 'certificates', validTo + 1000)).message).toMatch(/expired on/);
  });

  it('refuses a certificate whose key a JWK cannot carry (DSA, brainpool curves)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-cert-'));
    try {
      const make = (name: string, newkey: string[]) => {
        execFileSync('openssl', ['req', '-x509', ...newkey, '-nodes', '-keyout', path.join(dir, `${name}.key`), '-subj', `/CN=${name}`,
          '-days', '2', '-out', path.join(dir, `${name}.pem`)], { stdio: 'ignore' });
        return fs.readFileSync(path.join(dir, `${name}.pem`), 'utf8');
      };
      execFileSync('openssl', ['dsaparam', '-out', path.join(dir, 'dsa-params.pem'), '2048'], { stdio: 'ignore' });
      const dsa = make('dsa', ['-newkey', `dsa:${path.join(dir, 'dsa-params.pem')}`]);
      const brainpool = make('bp', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:brainpoolP256r1']);
      for (const pem of [dsa, brainpool]) {
        expect(refusal(() => checkClientCertificates([pem], 'certs'))).toEqual({
          code: 'invalid_input', fields: ['certs'],
          message: 'certs: certificate 1 has a key type a JWK cannot carry; use an EC (P-256, P-384, P-521), RSA or Ed25519 key',
        });
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('credentialMetadata', () => {
  it('stores what each method proves itself with', async () => {
    const key = await ec();
    expect(credentialMetadata('private_key_jwt', { jwks: { keys: [key] } })).toEqual({ jwks: { keys: [key] } });
    expect(credentialMetadata('private_key_jwt', { jwksUri: 'https://k.example/jwks' })).toEqual({ jwks_uri: 'https://k.example/jwks' });
    expect(credentialMetadata('tls_client_auth', { tlsSubject: { field: 'san_dns', value: 'A.example' } })).toEqual({ tls_client_auth_san_dns: 'a.example' });
    expect(credentialMetadata('tls_client_auth', { tlsSubject: { field: 'subject_dn', value: 'CN=a' } })).toEqual({ tls_client_auth_subject_dn: 'CN=a' });
    const cert = await selfSigned('CN=stock,O=Example');
    expect(credentialMetadata('self_signed_tls_client_auth', { certificates: [cert.cert] })).toMatchObject({ jwks: { keys: [{ kid: cert.thumbprint }] } });
    expect(credentialMetadata('self_signed_tls_client_auth', { jwksUri: 'https://k.example/jwks' })).toEqual({ jwks_uri: 'https://k.example/jwks' });
    expect(credentialMetadata('client_secret_basic', {})).toEqual({});
    expect(credentialMetadata('client_secret_basic', { jwks: undefined })).toEqual({});
    expect(credentialMetadata('none', {})).toEqual({});
  });

  it('refuses a credential of another method, and none or both of a pair', async () => {
    expect(refusal(() => credentialMetadata('client_secret_basic', { jwksUri: 'https://k.example/jwks' })))
      .toEqual({ code: 'invalid_input', message: 'jwksUri is for private_key_jwt or self_signed_tls_client_auth clients', fields: ['jwksUri'] });
    expect(refusal(() => credentialMetadata('private_key_jwt', { tlsSubject: { field: 'san_dns', value: 'a' } })))
      .toEqual({ code: 'invalid_input', message: 'tlsSubject is for tls_client_auth clients', fields: ['tlsSubject'] });
    expect(refusal(() => credentialMetadata('tls_client_auth', { certificates: [] })).message).toBe('certificates is for self_signed_tls_client_auth clients');
    expect(refusal(() => credentialMetadata('self_signed_tls_client_auth', { jwks: {} })).message).toBe('jwks is for private_key_jwt clients');
    const pair = { code: 'invalid_input', message: 'a private_key_jwt client needs exactly one of jwks (its public keys) or jwksUri', fields: ['jwks', 'jwksUri'] };
    expect(refusal(() => credentialMetadata('private_key_jwt', {}))).toEqual(pair);
    const key = await ec();
    expect(refusal(() => credentialMetadata('private_key_jwt', { jwks: { keys: [key] }, jwksUri: 'https://k.example/jwks' }))).toEqual(pair);
    expect(refusal(() => credentialMetadata('tls_client_auth', {}))).toEqual({
      code: 'invalid_input', message: 'a tls_client_auth client needs the subject DN or a SAN entry its certificate carries (tlsSubject)', fields: ['tlsSubject'],
    });
    const both = { code: 'invalid_input', message: 'a self_signed_tls_client_auth client needs exactly one of certificates (PEM) or jwksUri', fields: ['certificates', 'jwksUri'] };
    expect(refusal(() => credentialMetadata('self_signed_tls_client_auth', {}))).toEqual(both);
    expect(refusal(() => credentialMetadata('self_signed_tls_client_auth', { certificates: ['x'], jwksUri: 'https://k.example/jwks' }))).toEqual(both);
    expect(refusal(() => credentialMetadata('private_key_jwt', { jwksUri: 'http://k.example/jwks' })).message).toBe('jwksUri must use https (plain http only on a loopback host)');
    expect(refusal(() => credentialMetadata('self_signed_tls_client_auth', { jwksUri: 'http://k.example/jwks' })).fields).toEqual(['jwksUri']);
  });

  it('names the credential fields of an input, and the metadata properties they become', () => {
    expect(credentialsOf({ jwks: 1, jwksUri: 'u', name: 'n' } as never)).toEqual({ jwks: 1, jwksUri: 'u', tlsSubject: undefined, certificates: undefined });
    expect(CREDENTIAL_PROPERTIES).toEqual(['jwks', 'jwks_uri', 'tls_client_auth_subject_dn', 'tls_client_auth_san_dns', 'tls_client_auth_san_ip', 'tls_client_auth_san_email', 'tls_client_auth_san_uri']);
  });
});
