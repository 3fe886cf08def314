// Certificates made in the test (a CA, the server's, clients'), and HTTPS requests that present
// a client certificate: what mutual TLS needs, without files from anywhere else.
import { createHash, webcrypto } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
// @peculiar/x509 needs the Reflect metadata API loaded before it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

type KeyPair = webcrypto.CryptoKeyPair;
type Key = webcrypto.CryptoKey;
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface Issued {
  /** PEM */
  cert: string;
  /** PEM (PKCS #8) */
  key: string;
  /** x5t#S256: base64url SHA-256 of the DER certificate (RFC 8705 §3.1). */
  thumbprint: string;
}

export interface Authority extends Issued {
  issue(subject: string, options?: IssueOptions): Promise<Issued>;
  /** A CA issued by this one; what it issues chains through it (`chain`: leaf then intermediate, PEM). */
  intermediate(name: string): Promise<Authority>;
}

export interface IssueOptions {
  san?: { type: 'dns' | 'ip' | 'email' | 'url'; value: string }[];
  /** Valid from now - 1 day to now + `days` days (negative: already expired). */
  days?: number;
  /** A server certificate (serverAuth) rather than a client one. */
  server?: boolean;
  /** Marked as a CA (what a client certificate must not be). */
  ca?: boolean;
}

const keyPair = () => webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as Promise<KeyPair>;

async function newAuthority(name: string, keys: KeyPair, parent?: { cert: x509.X509Certificate; key: Key }): Promise<Authority> {
  const extensions = [
    new x509.BasicConstraintsExtension(true, parent ? 0 : 1, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  const ca = parent
    ? await x509.X509CertificateGenerator.create({
      subject: name, issuer: parent.cert.subject, publicKey: keys.publicKey, signingKey: parent.key, signingAlgorithm: ALG,
      ...validity(365), extensions: [...extensions, await x509.AuthorityKeyIdentifierExtension.create(parent.cert)],
    })
    : await x509.X509CertificateGenerator.createSelfSigned({ name, keys, signingAlgorithm: ALG, ...validity(365), extensions });
  const own = issued(ca, await pemKey(keys.privateKey));
  return {
    ...own,
    async issue(subject, options = {}) {
      const leaf = await keyPair();
      const cert = await x509.X509CertificateGenerator.create({
        subject,
        issuer: ca.subject,
        publicKey: leaf.publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: ALG,
        ...validity(options.days),
        extensions: [...leafExtensions(options), await x509.AuthorityKeyIdentifierExtension.create(ca)],
      });
      const result = issued(cert, await pemKey(leaf.privateKey));
      // A client behind an intermediate sends it along: the chain, leaf first.
      return parent ? { ...result, cert: `${result.cert}\n${own.cert}` } : result;
    },
    async intermediate(subName) {
      return newAuthority(subName, await keyPair(), { cert: ca, key: keys.privateKey });
    },
  };
}

async function pemKey(key: Key): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

function issued(cert: x509.X509Certificate, key: string): Issued {
  return { cert: cert.toString('pem'), key, thumbprint: createHash('sha256').update(Buffer.from(cert.rawData)).digest('base64url') };
}

function validity(days = 30): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return days >= 0
    ? { notBefore: new Date(now - DAY), notAfter: new Date(now + days * DAY) }
    : { notBefore: new Date(now + (days - 2) * DAY), notAfter: new Date(now + days * DAY) };
}

function leafExtensions(options: IssueOptions): x509.Extension[] {
  return [
    new x509.BasicConstraintsExtension(Boolean(options.ca), undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | (options.ca ? x509.KeyUsageFlags.keyCertSign : 0), true),
    new x509.ExtendedKeyUsageExtension([options.server ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    ...(options.san?.length ? [new x509.SubjectAlternativeNameExtension(options.san)] : []),
  ];
}

/** A CA that issues client (and server) certificates. */
export async function createAuthority(name = 'CN=Test Services CA,O=Example'): Promise<Authority> {
  return newAuthority(name, await keyPair());
}

/** A self-signed client certificate (self_signed_tls_client_auth). */
export async function selfSigned(subject: string, options: IssueOptions = {}): Promise<Issued> {
  const keys = await keyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: subject, keys, signingAlgorithm: ALG, ...validity(options.days), extensions: leafExtensions(options),
  });
  return issued(cert, await pemKey(keys.privateKey));
}

/** Writes PEM text to `dir/name` and returns the path. */
export function writePem(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text, { mode: 0o600 });
  return file;
}

export interface TlsReply { status: number; headers: Record<string, string | string[] | undefined>; body: any }

/**
 * An HTTPS request trusting `ca` for the server, presenting `client` (certificate and key) when
 * given. A new connection each time, so each request presents exactly what it says.
 */
export function tlsRequest(
  url: string,
  options: {
    ca: string; client?: { cert: string; key: string }; method?: string; form?: Record<string, string>; headers?: Record<string, string>;
    /** A keep-alive agent, to send several requests over one connection (new connection each time otherwise). */
    agent?: https.Agent;
  },
): Promise<TlsReply> {
  const body = options.form ? new URLSearchParams(options.form).toString() : undefined;
  return new Promise((resolve, reject) => {
    const request = https.request(url, {
      method: options.method ?? (body ? 'POST' : 'GET'),
      ca: options.ca,
      ...(options.client ? { cert: options.client.cert, key: options.client.key } : {}),
      agent: options.agent ?? false,
      headers: {
        ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        ...options.headers,
      },
      timeout: 10_000,
    }, (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk: string) => { text += chunk; });
      response.on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : text;
        } catch {}
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: parsed });
      });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from ${url} within 10 s`)));
    request.on('error', reject);
    request.end(body);
  });
}

/**
 * An x-forwarded-client-cert element exactly as Envoy writes it for the certificate of the
 * connection it terminated (forward_client_cert_details SANITIZE_SET or APPEND_FORWARD; its
 * conn_manager_utility.cc): `By` (its own certificate's URI names), `Hash` (hex SHA-256 of the
 * DER), then what set_current_client_cert_details asks for, in this order: `Cert` (the PEM with
 * newline, space, `+`, `/` and `=` percent-encoded), `Subject` (always quoted), `URI` and `DNS`
 * (written as they are, unquoted).
 */
export function envoyClientCertElement(cert: string, details: { by?: string; cert?: boolean; subject?: string; uri?: string[]; dns?: string[] } = {}): string {
  const pem = cert.split(/(?<=-----END CERTIFICATE-----)/)[0]!.trim();
  const der = Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, ''), 'base64');
  const parts: string[] = [];
  if (details.by) parts.push(`By=${details.by}`);
  parts.push(`Hash=${createHash('sha256').update(der).digest('hex')}`);
  if (details.cert) {
    const encoded = `${pem}\n`.replace(/[\n +/=]/g, (c) => ({ '\n': '%0A', ' ': '%20', '+': '%2B', '/': '%2F', '=': '%3D' })[c]!);
    parts.push(`Cert="${encoded}"`);
  }
  // The subject as RFC 4514 text (a `"` in it already escaped as `\"`), which Envoy quotes as it is.
  if (details.subject !== undefined) parts.push(`Subject="${details.subject}"`);
  if (details.uri) parts.push(...(details.uri.length ? details.uri.map((uri) => `URI=${uri}`) : ['URI=']));
  for (const dns of details.dns ?? []) parts.push(`DNS=${dns}`);
  return parts.join(';');
}
