// The client certificate the decision endpoint's Envoy contract reads from x-forwarded-client-cert
// (src/domain/forwarded-client-cert.ts), as a pure function: the shapes Envoy writes, and every
// shape a client could make it carry instead. Over HTTP: test/gateway-contracts.test.ts.
import { beforeAll, describe, expect, it } from 'vitest';
import { forwardedClientCertThumbprint } from '../src/domain/forwarded-client-cert.ts';
import { envoyClientCertElement, selfSigned, type Issued } from './support/certificates.ts';

let payments: Issued;
let stranger: Issued;

beforeAll(async () => {
  [payments, stranger] = await Promise.all([
    selfSigned('CN=payments', { san: [{ type: 'url', value: 'spiffe://example.org/ns/shop/sa/payments' }] }),
    selfSigned('CN=stranger'),
  ]);
});

const BY = 'spiffe://example.org/ns/edge/sa/envoy';

describe('forwardedClientCertThumbprint', () => {
  it('reads the x5t#S256 of the element Envoy sets, from its Hash, its Cert, or both', () => {
    const shapes = [
      // forward_client_cert_details: SANITIZE_SET, set_current_client_cert_details: {cert: true}
      envoyClientCertElement(payments.cert, { by: BY, cert: true }),
      // ... and everything else set_current_client_cert_details can ask for
      envoyClientCertElement(payments.cert, { by: BY, cert: true, subject: 'CN=payments', uri: ['spiffe://example.org/ns/shop/sa/payments'], dns: ['payments.internal', 'payments'] }),
      // no Cert: the Hash alone, which Envoy always writes
      envoyClientCertElement(payments.cert, { by: BY, subject: 'CN=payments', uri: [] }),
      envoyClientCertElement(payments.cert),
      // no By (Envoy's own certificate has no URI name)
      envoyClientCertElement(payments.cert, { cert: true }),
      // the keys are case-insensitive, the hex digits too
      envoyClientCertElement(payments.cert, { by: BY }).replace('Hash=', 'hash=').replace(/[0-9a-f]{64}/, (hex) => hex.toUpperCase()),
    ];
    for (const header of shapes) expect(forwardedClientCertThumbprint(header), header.slice(0, 120)).toBe(payments.thumbprint);
    // A quoted Subject may hold `,`, `;`, `=` and escaped quotes.
    expect(forwardedClientCertThumbprint(envoyClientCertElement(payments.cert, { subject: 'CN=a\\"b\\,c;Hash=00,O=x' }))).toBe(payments.thumbprint);
  });

  it('takes no header of several elements, whichever comes last', () => {
    const mine = envoyClientCertElement(payments.cert, { by: BY, cert: true, subject: 'CN=payments', uri: [] });
    const theirs = envoyClientCertElement(stranger.cert, { by: BY, cert: true, subject: 'CN=stranger', uri: [] });
    // APPEND_FORWARD: the client's own element (any text), then Envoy's; or two Envoys appending.
    expect(forwardedClientCertThumbprint(`${theirs},${mine}`)).toBeUndefined();
    expect(forwardedClientCertThumbprint(`${mine},${theirs}`)).toBeUndefined();
    // Node joins two x-forwarded-client-cert headers so.
    expect(forwardedClientCertThumbprint(`${mine}, ${mine}`)).toBeUndefined();
  });

  it('refuses an element a client certificate wrote into: Envoy leaves its URI and DNS names unquoted', async () => {
    const victimHex = envoyClientCertElement(payments.cert).slice('Hash='.length);
    const victimCert = /Cert="([^"]+)"/.exec(envoyClientCertElement(payments.cert, { cert: true }))![1]!;
    for (const name of [
      `spiffe://x,Hash=${victimHex}`,
      `spiffe://x,By=${BY};Hash=${victimHex};Cert="${victimCert}"`,
      `spiffe://x;Hash=${victimHex}`,
      `spiffe://x;Cert="${victimCert}"`,
      `spiffe://x;By=${BY}`,
      'spiffe://x"y',
    ]) {
      // The stranger's own certificate, with that URI name: Envoy writes its Hash, then the name.
      const header = envoyClientCertElement(stranger.cert, { by: BY, cert: true, subject: 'CN=stranger', uri: [name] });
      const read = forwardedClientCertThumbprint(header);
      expect(read, name).not.toBe(payments.thumbprint);
      expect(read, name).toBeUndefined();
      expect(forwardedClientCertThumbprint(envoyClientCertElement(stranger.cert, { dns: [name] })), name).toBeUndefined();
    }
  });

  it('reads nothing from a malformed value, and never throws', () => {
    const good = envoyClientCertElement(payments.cert, { by: BY, cert: true });
    const strangerHash = envoyClientCertElement(stranger.cert).slice('Hash='.length);
    const junk = [
      '', 'abc', ';', ',', 'Hash=', `${good};`, `${good},`, `;${good}`,
      'Hash=abc', `Hash=${'g'.repeat(64)}`, `Hash=${'a'.repeat(63)}`, `Hash=${'a'.repeat(66)}`,
      // a Hash and a Cert of two certificates
      good.replace(/Hash=[0-9a-f]{64}/, `Hash=${strangerHash}`),
      // a Cert that is no certificate, or two
      'Cert="abc"', 'Cert="%E0%A4%A"', 'Cert="-----BEGIN%20CERTIFICATE-----%0A%25%25%0A-----END%20CERTIFICATE-----"',
      `Cert="${/Cert="([^"]+)"/.exec(good)![1]!.repeat(2)}"`,
      `Cert="junk${/Cert="([^"]+)"/.exec(good)![1]!}"`,
      // keys out of Envoy's order, repeated, or unknown
      good.replace(/^By=[^;]*;(Hash=[^;]*)/, `$1;By=${BY}`),
      `${good};Hash=${strangerHash}`,
      `${good.split(';Cert=')[0]};Subject="CN=x";Cert=${good.split(';Cert=')[1]}`,
      `${good};X=1`,
      // unbalanced quotes
      'Hash="abc', `Subject="x;${good}`, `${good};Subject="CN=x`,
      '\u00ff\u00fe', 'Hash=\u0000',
    ];
    for (const header of junk) expect(() => forwardedClientCertThumbprint(header), header.slice(0, 80)).not.toThrow();
    for (const header of junk) expect(forwardedClientCertThumbprint(header), header.slice(0, 80)).toBeUndefined();
    // No Hash and no Cert: no certificate.
    expect(forwardedClientCertThumbprint(`By=${BY};Subject="CN=payments";URI=`)).toBeUndefined();
  });
});
