// Reading certificates and matching them against a tls_client_auth client's registered subject
// (RFC 8705 §2.1.2): distinguished names as RFC 4514 writes them, SAN entries, forwarded forms.
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { certificateMatchesSubject, chainsToTrustedCa, parseCertificate, parseDistinguishedName } from '../src/domain/certificates.ts';
import { createAuthority, type Authority } from './support/certificates.ts';

let ca: Authority;
beforeAll(async () => {
  ca = await createAuthority();
});

describe('distinguished names (RFC 4514)', () => {
  it('reads attributes with escapes, in any case of the type, and multi-valued RDNs', () => {
    expect(parseDistinguishedName('CN=orders, O=Acme\\, Inc.,c=DE')).toEqual(['CN=orders', 'O=Acme, Inc.', 'C=DE']);
    expect(parseDistinguishedName('CN=a\\2Bb\\22+OU=x')).toEqual(['CN=a+b"', 'OU=x']);
    expect(parseDistinguishedName('2.5.4.3=orders')).toEqual(['2.5.4.3=orders']);
    expect(parseDistinguishedName('CN=Ren\\C3\\A9')).toEqual(['CN=René']);
  });

  it('refuses what is not one', () => {
    for (const text of ['orders', 'CN=', '=orders', 'CN=a,,O=b', 'CN=#0403616263', 'C N=x']) {
      expect(() => parseDistinguishedName(text), text).toThrow();
    }
  });

  it('matches a certificate whose subject has exactly those attributes, in any order', async () => {
    const cert = new X509Certificate((await ca.issue('C=DE,O=Acme\\, Inc.,OU=payments,CN=ledger')).cert);
    expect(certificateMatchesSubject(cert, 'subject_dn', 'CN=ledger,OU=payments,O=Acme\\, Inc.,C=DE')).toBe(true);
    expect(certificateMatchesSubject(cert, 'subject_dn', 'C=DE,O=Acme\\, Inc.,OU=payments,CN=ledger')).toBe(true);
    expect(certificateMatchesSubject(cert, 'subject_dn', 'CN=ledger,OU=payments,O=Acme\\, Inc.')).toBe(false);
    expect(certificateMatchesSubject(cert, 'subject_dn', 'CN=Ledger,OU=payments,O=Acme\\, Inc.,C=DE')).toBe(false);
    expect(certificateMatchesSubject(cert, 'subject_dn', 'not a dn')).toBe(false);
  });
});

describe('SAN entries', () => {
  it('match exactly: DNS without case and never by wildcard, IP in any notation, URI and email as written', async () => {
    const cert = new X509Certificate((await ca.issue('CN=x', {
      san: [
        { type: 'dns', value: '*.shop.internal' }, { type: 'dns', value: 'stock.internal' }, { type: 'ip', value: '2001:db8::1' },
        { type: 'url', value: 'spiffe://example.org/ns/a,b' }, { type: 'email', value: 'ops@example.org' },
      ],
    })).cert);
    expect(certificateMatchesSubject(cert, 'san_dns', 'STOCK.internal')).toBe(true);
    expect(certificateMatchesSubject(cert, 'san_dns', 'cart.shop.internal')).toBe(false);
    expect(certificateMatchesSubject(cert, 'san_ip', '2001:0db8:0:0::1')).toBe(true);
    expect(certificateMatchesSubject(cert, 'san_ip', '2001:db8::2')).toBe(false);
    expect(certificateMatchesSubject(cert, 'san_uri', 'spiffe://example.org/ns/a,b')).toBe(true);
    expect(certificateMatchesSubject(cert, 'san_uri', 'spiffe://example.org/ns/a')).toBe(false);
    expect(certificateMatchesSubject(cert, 'san_email', 'ops@example.org')).toBe(true);
    expect(certificateMatchesSubject(cert, 'san_dns', 'x')).toBe(false);
  });
});

describe('SAN entries written to look like others', () => {
  it('a URI inside another entry\'s value is not a URI entry', async () => {
    const cert = new X509Certificate((await ca.issue('CN=x', {
      san: [{ type: 'dns', value: 'a, URI:spiffe://example.org/ns/shop/sa/orders, b' }],
    })).cert);
    expect(cert.subjectAltName).toContain('URI:spiffe://example.org/ns/shop/sa/orders');
    expect(certificateMatchesSubject(cert, 'san_uri', 'spiffe://example.org/ns/shop/sa/orders')).toBe(false);
  });
});

describe('trust of a forwarded certificate', () => {
  it('needs a chain to a trusted CA, a client (not server-only) usage, and a leaf that is not a CA', async () => {
    const authorities = [new X509Certificate(ca.cert)];
    const check = async (pem: string) => {
      const [leaf, ...rest] = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
      return chainsToTrustedCa(new X509Certificate(leaf!), rest.map((each) => new X509Certificate(each)), authorities);
    };
    expect(await check((await ca.issue('CN=client')).cert)).toBe(true);
    expect(await check((await ca.issue('CN=server', { server: true })).cert)).toBe(false);
    expect(await check((await ca.issue('CN=sub-ca', { ca: true })).cert)).toBe(false);
    expect(await check((await ca.issue('CN=old', { days: -1 })).cert)).toBe(false);
    const intermediate = await ca.intermediate('CN=Team CA');
    expect(await check((await intermediate.issue('CN=via-team')).cert)).toBe(true);
    // Without its intermediate the leaf does not chain.
    expect(await check((await intermediate.issue('CN=alone')).cert.split('\n-----BEGIN')[0]!)).toBe(false);
    expect(await check((await (await createAuthority('CN=Other CA')).issue('CN=client')).cert)).toBe(false);
  });
});

describe('forwarded certificates', () => {
  it('are read as PEM, URL-encoded PEM, base64 DER, an Envoy X-Forwarded-Client-Cert; anything else is no certificate', async () => {
    const { cert: pem } = await ca.issue('CN=x');
    const der = pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, '');
    const xfcc = `By=spiffe://example.org/ns/default/sa/postern;Hash=abc;Cert="${encodeURIComponent(pem)}";Subject="CN=x";URI=`;
    for (const form of [pem, encodeURIComponent(pem), der, pem.replace(/\n/g, ' '), xfcc]) {
      expect(parseCertificate(form)?.subject, form.slice(0, 40)).toBe('CN=x');
    }
    // A chain (as some load balancers forward it): the first certificate is the client's.
    const { cert: other } = await ca.issue('CN=y');
    expect(parseCertificate(encodeURIComponent(`${pem}${other}`))?.subject).toBe('CN=x');
    // Envoy: a Cert key written inside the certificate's own URI or DNS values is not the Cert.
    const injected = `By=spiffe://proxy;Hash=abc;Subject="CN=x";URI=spiffe://x;Cert=${encodeURIComponent(other)}`;
    const twice = `By=spiffe://proxy;Cert="${encodeURIComponent(pem)}";URI=spiffe://x;Cert=${encodeURIComponent(other)}`;
    for (const junk of [injected, twice, `${xfcc},${xfcc}`, '', 'abc', '%E0%A4%A', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----']) {
      expect(parseCertificate(junk)).toBeUndefined();
    }
  });
});
