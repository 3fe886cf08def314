// Where a request's client certificate comes from (oidc/client-certificates.ts), on real
// sockets: the TLS connection, or a proxy's header believed only from the proxy's address, and
// whether it chains to a configured CA now.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientCertificates, type PresentedCertificate } from '../src/oidc/client-certificates.ts';
import { createAuthority, selfSigned, tlsRequest, type Authority, type Issued } from './support/certificates.ts';

let ca: Authority;
let other: Authority;
let client: Issued;
let stranger: Issued;
let serverCert: Issued;

beforeAll(async () => {
  ca = await createAuthority();
  other = await createAuthority('CN=Other CA,O=Example');
  client = await ca.issue('CN=stock,O=Example');
  stranger = await selfSigned('CN=stranger,O=Example');
  serverCert = await ca.issue('CN=localhost', { server: true, san: [{ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' }] });
});

/** Runs `certificates.fromRequest` (twice, to see its cache) on each request a server gets. */
async function serve(certificates: ClientCertificates, tls: boolean, tlsCas = [ca.cert]) {
  const seen: (PresentedCertificate | undefined)[] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const first = certificates.fromRequest(req);
    expect(certificates.fromRequest(req)).toBe(first);
    seen.push(first);
    res.end('ok');
  };
  const server = tls
    ? https.createServer({ cert: serverCert.cert, key: serverCert.key, ca: tlsCas, requestCert: true, rejectUnauthorized: false }, handler)
    : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}/`,
    seen,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

const authorities = (...pems: string[]) => pems.map((pem) => new X509Certificate(pem));

describe('a certificate forwarded by a proxy', () => {
  it('is read from the header only when the connection comes from a configured proxy', async () => {
    const trusting = new ClientCertificates({ header: 'X-Client-Cert', proxies: ['127.0.0.0/8'] }, authorities(ca.cert));
    const elsewhere = new ClientCertificates({ header: 'x-client-cert', proxies: ['10.0.0.0/8'] }, authorities(ca.cert));
    const noProxies = new ClientCertificates({ header: 'x-client-cert', proxies: [] }, authorities(ca.cert));
    const noHeader = new ClientCertificates({ header: undefined, proxies: ['127.0.0.0/8'] }, authorities(ca.cert));
    for (const [certificates, expected] of [[trusting, true], [elsewhere, false], [noProxies, false], [noHeader, false]] as const) {
      const server = await serve(certificates, false);
      try {
        await fetch(server.url, { headers: { 'x-client-cert': encodeURIComponent(client.cert) } });
        const got = server.seen[0];
        if (!expected) { expect(got).toBeUndefined(); continue; }
        expect(got?.thumbprint).toBe(client.thumbprint);
        expect(got?.trusted).toBe(true);
        expect(got?.cert.subject).toContain('CN=stock');
      } finally {
        await server.close();
      }
    }
  });

  it('is trusted only when it chains to a configured CA, and not without CAs', async () => {
    const withCa = new ClientCertificates({ header: 'x-client-cert', proxies: ['127.0.0.1/32'] }, authorities(ca.cert));
    expect(withCa.hasAuthorities).toBe(true);
    const server = await serve(withCa, false);
    try {
      await fetch(server.url, { headers: { 'x-client-cert': encodeURIComponent(stranger.cert) } });
      expect(server.seen[0]).toMatchObject({ thumbprint: stranger.thumbprint, trusted: false });
      await fetch(server.url, { headers: { 'x-client-cert': encodeURIComponent(client.cert) } });
      expect(server.seen[1]).toMatchObject({ thumbprint: client.thumbprint, trusted: true });
      withCa.setAuthorities(authorities(other.cert));
      await fetch(server.url, { headers: { 'x-client-cert': encodeURIComponent(client.cert) } });
      expect(server.seen[2]).toMatchObject({ thumbprint: client.thumbprint, trusted: false });
      withCa.setAuthorities([]);
      expect(withCa.hasAuthorities).toBe(false);
    } finally {
      await server.close();
    }
  });

  it('is none when the header is missing, empty, repeated or not a certificate', async () => {
    const certificates = new ClientCertificates({ header: 'x-client-cert', proxies: ['127.0.0.1/32'] }, authorities(ca.cert));
    const server = await serve(certificates, false);
    try {
      await fetch(server.url);
      await fetch(server.url, { headers: { 'x-client-cert': '' } });
      await fetch(server.url, { headers: { 'x-client-cert': 'not a certificate' } });
      expect(server.seen).toEqual([undefined, undefined, undefined]);
    } finally {
      await server.close();
    }
  });
});

describe('a certificate of the TLS connection', () => {
  it('is trusted when TLS verified it against a configured CA, present but untrusted otherwise, none without one', async () => {
    const certificates = new ClientCertificates({ header: undefined, proxies: [] }, authorities(ca.cert));
    const server = await serve(certificates, true);
    try {
      await tlsRequest(server.url, { ca: ca.cert, client });
      await tlsRequest(server.url, { ca: ca.cert, client: stranger });
      await tlsRequest(server.url, { ca: ca.cert });
      expect(server.seen[0]).toMatchObject({ thumbprint: client.thumbprint, trusted: true });
      expect(server.seen[1]).toMatchObject({ thumbprint: stranger.thumbprint, trusted: false });
      expect(server.seen[2]).toBeUndefined();
    } finally {
      await server.close();
    }
  });

  it('follows an intermediate the client sends, and stops trusting when the CAs change, on a connection that stays open', async () => {
    const intermediate = await ca.intermediate('CN=Team CA,O=Example');
    const behind = await intermediate.issue('CN=billing,O=Example');
    const certificates = new ClientCertificates({ header: undefined, proxies: [] }, authorities(ca.cert));
    const server = await serve(certificates, true);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      await tlsRequest(server.url, { ca: ca.cert, client: behind, agent });
      expect(server.seen[0]).toMatchObject({ trusted: true });
      expect(server.seen[0]!.cert.subject).toContain('CN=billing');
      certificates.setAuthorities(authorities(other.cert));
      await tlsRequest(server.url, { ca: ca.cert, client: behind, agent });
      expect(server.seen[1]).toMatchObject({ trusted: false });
      certificates.setAuthorities([]);
      await tlsRequest(server.url, { ca: ca.cert, client: behind, agent });
      expect(server.seen[2]).toMatchObject({ trusted: false });
    } finally {
      agent.destroy();
      await server.close();
    }
  });

  it('is not trusted when TLS did not verify it, even if it chains to a configured CA', async () => {
    // The listener's TLS trusts another CA than the one configured now (the file just changed).
    const certificates = new ClientCertificates({ header: undefined, proxies: [] }, authorities(ca.cert));
    const server = await serve(certificates, true, [other.cert]);
    try {
      await tlsRequest(server.url, { ca: ca.cert, client });
      expect(server.seen[0]).toMatchObject({ thumbprint: client.thumbprint, trusted: false });
    } finally {
      await server.close();
    }
    expect(new ClientCertificates({ header: undefined, proxies: [] }).hasAuthorities).toBe(false);
  });

  it('is none on a plain connection when no proxy header applies', async () => {
    const certificates = new ClientCertificates({ header: 'x-client-cert', proxies: ['10.0.0.0/8'] }, authorities(ca.cert));
    const server = await serve(certificates, false);
    try {
      await fetch(server.url, { headers: { 'x-client-cert': encodeURIComponent(client.cert) } });
      expect(server.seen).toEqual([undefined]);
    } finally {
      await server.close();
    }
  });
});
