// X.509 client certificates (RFC 8705): reading them, their thumbprint, whether a trusted CA
// issued them, and whether they carry the subject a tls_client_auth client registered.
import { createHash, X509Certificate } from 'node:crypto';
import ipaddr from 'ipaddr.js';

/** The registered subject of a tls_client_auth client: exactly one of these (RFC 8705 §2.1.2). */
export const TLS_SUBJECT_FIELDS = {
  subject_dn: 'tls_client_auth_subject_dn',
  san_dns: 'tls_client_auth_san_dns',
  san_ip: 'tls_client_auth_san_ip',
  san_email: 'tls_client_auth_san_email',
  san_uri: 'tls_client_auth_san_uri',
} as const;
export type TlsSubjectField = keyof typeof TLS_SUBJECT_FIELDS;
export interface TlsSubject { field: TlsSubjectField; value: string }

/** RFC 8705 §3.1: base64url SHA-256 of the DER certificate, the `x5t#S256` of a bound token. */
export function certificateThumbprint(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('base64url');
}

/** The PEM certificate blocks of a text, in order (a file, a bundle, a forwarded chain). */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * The elements of an Envoy X-Forwarded-Client-Cert header, each the list of its key (lower case)
 * and value pairs in order: elements are separated by `,`, pairs by `;`, and a value may be a
 * quoted string in which those separators (and `\"`) are plain text. Undefined when the header
 * is not one, a trailing `;` or `,` included (Envoy never writes an empty pair or element).
 */
export function parseForwardedClientCert(text: string): [string, string][][] | undefined {
  const elements: [string, string][][] = [];
  let current: [string, string][] = [];
  let separator = '';
  const pair = /\s*([A-Za-z]+)=("(?:[^"\\]|\\.)*"|[^;,"]*)\s*([;,]|$)/y;
  while (pair.lastIndex < text.length) {
    const at = pair.lastIndex;
    const match = pair.exec(text);
    if (!match || pair.lastIndex === at) return undefined;
    const raw = match[2]!;
    current.push([match[1]!.toLowerCase(), raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw]);
    separator = match[3]!;
    if (separator !== ';') {
      elements.push(current);
      current = [];
    }
  }
  return separator === '' ? elements : undefined;
}

/**
 * A certificate as PEM, as base64 DER, or URL-encoded (how TLS-terminating proxies forward it:
 * nginx `$ssl_client_escaped_cert`, cloud load balancers), or the `Cert` of an Envoy
 * X-Forwarded-Client-Cert element. The first certificate of a chain is the client's. Undefined
 * when unreadable.
 */
export function parseCertificate(text: string): X509Certificate | undefined {
  let value = text.trim();
  if (/^(By|Hash|Cert|Chain|Subject|URI|DNS)=/i.test(value)) {
    // Envoy/Istio: one element when the proxy sets the header (SANITIZE_SET), with the `Cert`
    // key (set_current_client_cert_details). Several elements (proxies appending) do not say
    // which one is the caller's. Envoy writes By, Hash, Cert, Chain, then Subject, URI and DNS,
    // whose values come from the certificate and are not all quoted: a `;Cert=` there could be
    // the client's own text. So exactly one Cert, before any of those, or no certificate.
    const elements = parseForwardedClientCert(value);
    if (elements?.length !== 1) return undefined;
    const keys = elements[0]!.map(([key]) => key);
    const at = keys.indexOf('cert');
    if (at < 0 || keys.lastIndexOf('cert') !== at || keys.slice(0, at).some((key) => ['subject', 'uri', 'dns'].includes(key))) {
      return undefined;
    }
    value = elements[0]![at]![1];
  }
  if (value.includes('%')) {
    try {
      value = decodeURIComponent(value);
    } catch {
      return undefined;
    }
  }
  // A forwarded chain (AWS ALB in passthrough mode): the first block is the client's.
  const [first] = pemCertificates(value);
  if (first) value = first;
  const body = value.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  if (!body || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(body)) return undefined;
  try {
    return new X509Certificate(Buffer.from(body, 'base64'));
  } catch {
    return undefined;
  }
}

/** Every certificate in a PEM bundle (a CA file). Throws when there is none or one is unreadable. */
export function parseCertificateBundle(pem: string, what: string): X509Certificate[] {
  const blocks = pemCertificates(pem);
  if (blocks.length === 0) throw new Error(`${what} holds no PEM certificate`);
  return blocks.map((block, index) => {
    const cert = parseCertificate(block);
    if (!cert) throw new Error(`${what}: certificate ${index + 1} cannot be read`);
    return cert;
  });
}

function isCurrent(cert: X509Certificate, now: number): boolean {
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
}

const CLIENT_AUTH_EKU = '1.3.6.1.5.5.7.3.2';
const ANY_EKU = '2.5.29.37.0';
const MAX_CHAIN = 4;

/**
 * Whether `cert` is a client certificate that chains to one of the trusted CA certificates,
 * through the intermediates given (as a client sends them), every link valid now: issuer name,
 * signature, CA flag. The leaf must not be a CA and, when it names extended key usages, must
 * allow client authentication (as TLS itself checks a client certificate).
 */
export function chainsToTrustedCa(
  cert: X509Certificate,
  intermediates: readonly X509Certificate[],
  authorities: readonly X509Certificate[],
  now = Date.now(),
): boolean {
  if (!isCurrent(cert, now) || cert.ca) return false;
  const usages = cert.keyUsage;
  if (usages && usages.length && !usages.includes(CLIENT_AUTH_EKU) && !usages.includes(ANY_EKU)) return false;
  const issues = (issuer: X509Certificate, subject: X509Certificate) =>
    issuer.ca && isCurrent(issuer, now) && subject.checkIssued(issuer) && subject.verify(issuer.publicKey);
  let current = cert;
  for (let depth = 0; depth <= MAX_CHAIN; depth += 1) {
    if (authorities.some((ca) => issues(ca, current))) return true;
    const next = intermediates.find((candidate) => candidate !== current && issues(candidate, current));
    if (!next) return false;
    current = next;
  }
  return false;
}

// ---- distinguished names (RFC 4514)

/** Attribute types compared case-insensitively; these aliases name the same attribute. */
const TYPE_ALIASES: Record<string, string> = { E: 'EMAILADDRESS', EMAIL: 'EMAILADDRESS', S: 'ST', SN: 'SURNAME' };
const normalizeType = (type: string) => {
  const upper = type.trim().toUpperCase();
  return TYPE_ALIASES[upper] ?? upper;
};

/**
 * The attributes of a distinguished name written as RFC 4514 (`CN=orders,O=Example\, Inc.,C=DE`),
 * as `TYPE=value` strings. Throws on a malformed name. Hex values (`#04...`) are not accepted.
 */
export function parseDistinguishedName(text: string): string[] {
  const attributes: string[] = [];
  let type = '';
  let value = '';
  let inValue = false;
  const finish = () => {
    if (!inValue || !type.trim() || !/^[A-Za-z][A-Za-z0-9-]*$|^\d+(\.\d+)+$/.test(type.trim())) {
      throw new Error('expected TYPE=value pairs separated by commas, like CN=orders,O=Example');
    }
    const trimmed = value.replace(/^ +/, '').replace(/(?<!\\) +$/, '');
    if (!trimmed) throw new Error(`${type.trim()} has an empty value`);
    if (trimmed.startsWith('#')) throw new Error('hex-encoded values (#...) are not supported; write the value as text');
    attributes.push(`${normalizeType(type)}=${unescapeValue(trimmed)}`);
    type = '';
    value = '';
    inValue = false;
  };
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i]!;
    if (!inValue) {
      if (char === '=') inValue = true;
      else type += char;
      continue;
    }
    if (char === '\\') {
      value += char + (text[i + 1] ?? '');
      i += 1;
    } else if (char === ',' || char === '+' || char === ';') {
      finish();
    } else {
      value += char;
    }
  }
  finish();
  return attributes;
}

function unescapeValue(value: string): string {
  const bytes: number[] = [];
  const out: string[] = [];
  const flush = () => {
    if (bytes.length) out.push(Buffer.from(bytes).toString('utf8'));
    bytes.length = 0;
  };
  for (let i = 0; i < value.length; i += 1) {
    if (value[i] === '\\') {
      const hex = value.slice(i + 1, i + 3);
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        bytes.push(Number.parseInt(hex, 16));
        i += 2;
        continue;
      }
      flush();
      out.push(value[i + 1] ?? '');
      i += 1;
      continue;
    }
    flush();
    out.push(value[i]!);
  }
  flush();
  return out.join('');
}

/** The subject of a certificate as `TYPE=value` strings (the same form as parseDistinguishedName). */
function certificateSubject(cert: X509Certificate): string[] {
  const legacy = cert.toLegacyObject().subject as Record<string, string | string[]> | undefined;
  if (!legacy) return [];
  return Object.entries(legacy).flatMap(([type, values]) =>
    (Array.isArray(values) ? values : [values]).map((value) => `${normalizeType(type)}=${value}`));
}

const sameMultiset = (a: string[], b: string[]) => {
  if (a.length !== b.length) return false;
  const sortedB = [...b].sort();
  return [...a].sort().every((item, index) => item === sortedB[index]);
};

/**
 * URI entries of the subjectAltName. Node prints entries as `TYPE:value` joined by `, ` and
 * JSON-quotes a value holding a separator; the entries are read one after the other from the
 * start, so text inside another entry's quoted value is never taken for an entry. Anything
 * unreadable gives no URI at all.
 */
function sanUris(cert: X509Certificate): string[] {
  const text = cert.subjectAltName ?? '';
  const entry = /([^:,"]+):("(?:[^"\\]|\\.)*"|[^,"]*)(?:, |$)/y;
  const uris: string[] = [];
  while (entry.lastIndex < text.length) {
    const at = entry.lastIndex;
    const match = entry.exec(text);
    if (!match || entry.lastIndex === at) return [];
    if (match[1] !== 'URI') continue;
    try {
      uris.push(match[2]!.startsWith('"') ? JSON.parse(match[2]!) as string : match[2]!);
    } catch {
      return [];
    }
  }
  return uris;
}

/**
 * RFC 8705 §2.1.2: the certificate carries the registered subject. The DN must have exactly the
 * registered attributes, in any order, values compared exactly; SAN entries compare exactly
 * (DNS names without case, IP addresses in any notation), never against wildcards.
 */
export function certificateMatchesSubject(cert: X509Certificate, field: TlsSubjectField, expected: string): boolean {
  switch (field) {
    case 'subject_dn': {
      let wanted: string[];
      try {
        wanted = parseDistinguishedName(expected);
      } catch {
        return false;
      }
      return sameMultiset(certificateSubject(cert), wanted);
    }
    case 'san_dns':
      return cert.checkHost(expected, { subject: 'never', wildcards: false }) !== undefined;
    case 'san_ip':
      try {
        return cert.checkIP(ipaddr.process(expected).toString()) !== undefined;
      } catch {
        return false;
      }
    case 'san_email':
      return cert.checkEmail(expected, { subject: 'never' }) !== undefined;
    case 'san_uri':
      return sanUris(cert).includes(expected);
    default:
      return false;
  }
}
